//! Matching detections to ground truth image by image (pycocotools' `evaluate`), then precision and
//! recall over the whole set (its `accumulate`).

use std::collections::{HashMap, HashSet};

use super::operating::Matches;
use super::{Dataset, GroundTruth, ScoredBox};

/// Detections kept per image and category, best first: the last of COCO's `maxDets` (1, 10, 100).
pub const MAX_DETECTIONS: [usize; 3] = [1, 10, 100];

/// COCO's area ranges, in square pixels, both ends included: all, small, medium, large.
pub const AREA_RANGES: [(f64, f64); 4] = [
    (0.0, 1e10),
    (0.0, 32.0 * 32.0),
    (32.0 * 32.0, 96.0 * 96.0),
    (96.0 * 96.0, 1e10),
];

pub(super) const IOU_STEPS: usize = 10;
pub(super) const RECALL_STEPS: usize = 101;

/// `n` evenly spaced values from `start` to `stop`, computed as numpy's `linspace` does (`i * step +
/// start`, the last exactly `stop`), so thresholds compare equal where pycocotools' do.
fn linspace<const N: usize>(start: f64, stop: f64) -> [f64; N] {
    let step = (stop - start) / (N - 1) as f64;
    std::array::from_fn(|i| {
        if i == N - 1 {
            stop
        } else {
            i as f64 * step + start
        }
    })
}

/// IoU thresholds 0.50, 0.55 ... 0.95.
pub(super) fn iou_thresholds() -> [f64; IOU_STEPS] {
    linspace(0.5, 0.95)
}

/// Recall points 0.00, 0.01 ... 1.00.
fn recall_thresholds() -> [f64; RECALL_STEPS] {
    linspace(0.0, 1.0)
}

/// Precision and recall of every category, area range and detection budget.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Dataset category ids, ascending: the `k` axis.
    pub categories: Vec<u64>,
    /// Interpolated precision by `[t][r][k][a][m]`; -1 where the category has no ground truth there.
    precision: Vec<f64>,
    /// Recall by `[t][k][a][m]`; -1 likewise.
    recall: Vec<f64>,
    /// Images scored.
    pub images: usize,
    /// Detections scored (those on the dataset's images and categories).
    pub detections: usize,
    /// Each detection's match at IoU 0.50, all areas: what a score threshold would give.
    pub matches: Matches,
}

impl Evaluation {
    fn new(categories: Vec<u64>, images: usize, detections: usize) -> Evaluation {
        let (k, a, m) = (categories.len(), AREA_RANGES.len(), MAX_DETECTIONS.len());
        Evaluation {
            precision: vec![-1.0; IOU_STEPS * RECALL_STEPS * k * a * m],
            recall: vec![-1.0; IOU_STEPS * k * a * m],
            categories,
            images,
            detections,
            matches: Matches::default(),
        }
    }

    fn precision_index(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> usize {
        let (kn, an, mn) = (
            self.categories.len(),
            AREA_RANGES.len(),
            MAX_DETECTIONS.len(),
        );
        (((t * RECALL_STEPS + r) * kn + k) * an + a) * mn + m
    }

    fn recall_index(&self, t: usize, k: usize, a: usize, m: usize) -> usize {
        let (kn, an, mn) = (
            self.categories.len(),
            AREA_RANGES.len(),
            MAX_DETECTIONS.len(),
        );
        ((t * kn + k) * an + a) * mn + m
    }

    /// Interpolated precision at IoU threshold `t`, recall point `r`, category `k`, area range `a`,
    /// detection budget `m` (indices); -1 where undefined.
    pub fn precision(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        self.precision[self.precision_index(t, r, k, a, m)]
    }

    /// Recall at IoU threshold `t`, category `k`, area range `a`, budget `m`; -1 where undefined.
    pub fn recall(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        self.recall[self.recall_index(t, k, a, m)]
    }
}

/// What one image and category gave under one area range: its detections best first (at most the
/// largest budget), whether each is matched and whether it is ignored at each IoU threshold, and how
/// many ground-truth objects count.
struct ImageScore {
    scores: Vec<f64>,
    matched: Vec<[bool; IOU_STEPS]>,
    ignored: Vec<[bool; IOU_STEPS]>,
    counted: usize,
}

/// Scores `results` against `dataset` with the COCO protocol (see the module header of `coco`).
/// Results on images or categories the dataset does not have are not scored.
pub fn evaluate(dataset: &Dataset, results: &[ScoredBox]) -> Evaluation {
    let mut images: Vec<u64> = dataset.images.iter().map(|i| i.id).collect();
    images.sort_unstable();
    let mut categories: Vec<u64> = dataset.categories.iter().map(|c| c.id).collect();
    categories.sort_unstable();

    let mut truth: HashMap<(u64, u64), Vec<&GroundTruth>> = HashMap::new();
    for a in &dataset.annotations {
        truth
            .entry((a.image_id, a.category_id))
            .or_default()
            .push(a);
    }
    let known_images: HashSet<u64> = images.iter().copied().collect();
    let known_categories: HashSet<u64> = categories.iter().copied().collect();
    let mut found: HashMap<(u64, u64), Vec<&ScoredBox>> = HashMap::new();
    for r in results
        .iter()
        .filter(|r| known_images.contains(&r.image_id) && known_categories.contains(&r.category_id))
    {
        found
            .entry((r.image_id, r.category_id))
            .or_default()
            .push(r);
    }
    for list in found.values_mut() {
        // Best first; equal scores keep their order in `results` (a stable sort, as numpy's mergesort).
        list.sort_by(|a, b| b.score.total_cmp(&a.score));
        list.truncate(MAX_DETECTIONS[MAX_DETECTIONS.len() - 1]);
    }
    let scored = found.values().map(Vec::len).sum();

    let mut evaluation = Evaluation::new(categories.clone(), images.len(), scored);
    let thresholds = iou_thresholds();
    for (k, &category) in categories.iter().enumerate() {
        for (a, &range) in AREA_RANGES.iter().enumerate() {
            let per_image: Vec<ImageScore> = images
                .iter()
                .filter_map(|&image| {
                    let gts = truth.get(&(image, category)).map_or(&[][..], Vec::as_slice);
                    let dts = found.get(&(image, category)).map_or(&[][..], Vec::as_slice);
                    score_image(gts, dts, range, &thresholds)
                })
                .collect();
            for (m, &budget) in MAX_DETECTIONS.iter().enumerate() {
                accumulate(&mut evaluation, &per_image, budget, (k, a, m));
            }
            if a == 0 {
                keep_matches(&mut evaluation.matches, &per_image);
            }
        }
    }
    evaluation
}

/// The detections of one category over all areas (at most the largest budget per image), each with
/// whether it matched at the first IoU threshold, 0.50; ignored ones (on crowd regions) left out.
fn keep_matches(matches: &mut Matches, per_image: &[ImageScore]) {
    for s in per_image {
        matches.objects += s.counted;
        for (d, &score) in s.scores.iter().enumerate() {
            if !s.ignored[d][0] {
                matches.detections.push((score, s.matched[d][0]));
            }
        }
    }
}

/// IoU of a detection and a ground-truth box (`[x, y, w, h]`); for a crowd region, the intersection
/// over the detection's area alone.
fn iou(d: &[f64; 4], g: &[f64; 4], crowd: bool) -> f64 {
    let w = (d[0] + d[2]).min(g[0] + g[2]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[1] + d[3]).min(g[1] + g[3]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let inter = w * h;
    let (da, ga) = (d[2] * d[3], g[2] * g[3]);
    inter / if crowd { da } else { da + ga - inter }
}

/// Greedy matching for one image and category (`dts` best first); `None` when it has neither.
fn score_image(
    gts: &[&GroundTruth],
    dts: &[&ScoredBox],
    (low, high): (f64, f64),
    thresholds: &[f64; IOU_STEPS],
) -> Option<ImageScore> {
    if gts.is_empty() && dts.is_empty() {
        return None;
    }
    let outside = |area: f64| area < low || area > high;
    // Counted ground truth first, ignored (crowd or outside the range) after, each in file order.
    let mut gts: Vec<(&GroundTruth, bool)> = gts
        .iter()
        .map(|g| (*g, g.iscrowd || outside(g.area())))
        .collect();
    gts.sort_by_key(|&(_, ignored)| ignored);
    let ious: Vec<Vec<f64>> = dts
        .iter()
        .map(|d| {
            gts.iter()
                .map(|(g, _)| iou(&d.bbox, &g.bbox, g.iscrowd))
                .collect()
        })
        .collect();

    let mut matched = vec![[false; IOU_STEPS]; dts.len()];
    let mut ignored = vec![[false; IOU_STEPS]; dts.len()];
    for (t, &threshold) in thresholds.iter().enumerate() {
        let mut taken = vec![false; gts.len()];
        for (d, row) in ious.iter().enumerate() {
            let mut best = threshold.min(1.0 - 1e-10);
            let mut found: Option<usize> = None;
            for (g, &(truth, truth_ignored)) in gts.iter().enumerate() {
                // A matched object is taken, unless it is a crowd region.
                if taken[g] && !truth.iscrowd {
                    continue;
                }
                // Matched to a counted object: ignored ones, which come after, do not compete.
                if found.is_some_and(|m| !gts[m].1) && truth_ignored {
                    break;
                }
                if row[g] < best {
                    continue;
                }
                best = row[g];
                found = Some(g);
            }
            if let Some(g) = found {
                ignored[d][t] = gts[g].1;
                matched[d][t] = true;
                taken[g] = true;
            }
        }
    }
    // An unmatched detection outside the range is not counted against the model.
    for (d, dt) in dts.iter().enumerate() {
        if outside(dt.area()) {
            for t in 0..IOU_STEPS {
                ignored[d][t] |= !matched[d][t];
            }
        }
    }
    Some(ImageScore {
        scores: dts.iter().map(|d| d.score).collect(),
        matched,
        ignored,
        counted: gts.iter().filter(|(_, ignored)| !ignored).count(),
    })
}

/// Precision at each recall point and the final recall of one category, area range and budget
/// `(k, a, m)`, over every image's first `budget` detections.
fn accumulate(
    evaluation: &mut Evaluation,
    per_image: &[ImageScore],
    budget: usize,
    (k, a, m): (usize, usize, usize),
) {
    if per_image.is_empty() {
        return;
    }
    let counted: usize = per_image.iter().map(|s| s.counted).sum();
    if counted == 0 {
        return;
    }
    // Every image's first `budget` detections, best first across images; equal scores keep image order.
    let mut pooled: Vec<(f64, &[bool; IOU_STEPS], &[bool; IOU_STEPS])> = per_image
        .iter()
        .flat_map(|s| {
            let n = s.scores.len().min(budget);
            (0..n).map(move |d| (s.scores[d], &s.matched[d], &s.ignored[d]))
        })
        .collect();
    pooled.sort_by(|x, y| y.0.total_cmp(&x.0));

    let recall_points = recall_thresholds();
    for t in 0..IOU_STEPS {
        let (mut tp, mut fp) = (0.0f64, 0.0f64);
        let mut recall = Vec::with_capacity(pooled.len());
        let mut precision = Vec::with_capacity(pooled.len());
        for (_, matched, ignored) in &pooled {
            if !ignored[t] {
                if matched[t] {
                    tp += 1.0;
                } else {
                    fp += 1.0;
                }
            }
            recall.push(tp / counted as f64);
            precision.push(tp / (fp + tp + f64::EPSILON));
        }
        let at = evaluation.recall_index(t, k, a, m);
        evaluation.recall[at] = recall.last().copied().unwrap_or(0.0);
        // The precision envelope: at each point, the best precision at this recall or beyond.
        for i in (1..precision.len()).rev() {
            if precision[i] > precision[i - 1] {
                precision[i - 1] = precision[i];
            }
        }
        for (r, &point) in recall_points.iter().enumerate() {
            // The first detection whose recall reaches the point; none past the last: 0.
            let i = recall.partition_point(|&rc| rc < point);
            let at = evaluation.precision_index(t, r, k, a, m);
            evaluation.precision[at] = precision.get(i).copied().unwrap_or(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::coco::Summary;

    /// A dataset of `images` (ids 1..) and categories 1 and 2, with `(image, category, bbox, crowd)`
    /// ground truth.
    fn dataset(images: u64, truth: &[(u64, u64, [f64; 4], bool)]) -> Dataset {
        let annotations: Vec<serde_json::Value> = truth
            .iter()
            .enumerate()
            .map(|(i, (image, category, bbox, crowd))| {
                serde_json::json!({"id": i + 1, "image_id": image, "category_id": category,
                                   "bbox": bbox, "iscrowd": u8::from(*crowd)})
            })
            .collect();
        let images: Vec<serde_json::Value> = (1..=images)
            .map(|id| serde_json::json!({"id": id, "file_name": format!("{id}.jpg")}))
            .collect();
        let text = serde_json::json!({"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]});
        Dataset::from_json(text.to_string().as_bytes()).unwrap()
    }

    fn found(image: u64, category: u64, bbox: [f64; 4], score: f64) -> ScoredBox {
        ScoredBox {
            image_id: image,
            category_id: category,
            bbox,
            score,
        }
    }

    fn summary(dataset: &Dataset, results: &[ScoredBox]) -> Summary {
        evaluate(dataset, results).summary()
    }

    fn close(value: Option<f64>, expected: f64) -> bool {
        value.is_some_and(|v| (v - expected).abs() < 1e-12)
    }

    const A: [f64; 4] = [10.0, 10.0, 100.0, 100.0];
    const B: [f64; 4] = [200.0, 10.0, 50.0, 80.0];

    #[test]
    fn perfect_detections_score_one_and_none_score_zero() {
        let d = dataset(2, &[(1, 1, A, false), (1, 1, B, false), (2, 2, A, false)]);
        let perfect = [
            found(1, 1, A, 0.9),
            found(1, 1, B, 0.8),
            found(2, 2, A, 0.7),
        ];
        let s = summary(&d, &perfect);
        for v in [s.map, s.map_50, s.map_75, s.map_large, s.mar_10, s.mar_100] {
            assert!(close(v, 1.0), "{s:?}");
        }
        assert!(
            close(s.mar_1, 0.75),
            "one detection per image: category 1 finds half: {s:?}"
        );
        assert_eq!(s.map_small, None, "no small objects");

        let s = summary(&d, &[]);
        assert!(close(s.map, 0.0) && close(s.mar_100, 0.0), "{s:?}");
    }

    #[test]
    fn a_box_shifted_by_a_known_amount_counts_below_its_iou_only() {
        // Shifted by 10 of its 100 pixels: IoU 9000 / 11000 = 0.818, a match at 0.50 ... 0.80 (7 of
        // 10 thresholds).
        let d = dataset(1, &[(1, 1, A, false)]);
        let shifted = [found(1, 1, [20.0, 10.0, 100.0, 100.0], 0.9)];
        let s = summary(&d, &shifted);
        assert!(
            close(s.map, 0.7) && close(s.map_50, 1.0) && close(s.map_75, 1.0),
            "{s:?}"
        );
        assert!(close(s.mar_100, 0.7), "{s:?}");
    }

    #[test]
    fn a_duplicate_is_a_false_positive_where_it_ranks() {
        let d = dataset(1, &[(1, 1, A, false), (1, 1, B, false)]);
        // Ranked below every true positive, it costs nothing.
        let last = [
            found(1, 1, A, 0.9),
            found(1, 1, B, 0.8),
            found(1, 1, A, 0.7),
        ];
        assert!(close(summary(&d, &last).map, 1.0));
        // Between them: precision 2/3 from recall 0.51 on, so AP = (51 + 50 * 2/3) / 101.
        let between = [
            found(1, 1, A, 0.9),
            found(1, 1, A, 0.8),
            found(1, 1, B, 0.7),
        ];
        let s = summary(&d, &between);
        assert!(close(s.map, (51.0 + 50.0 * 2.0 / 3.0) / 101.0), "{s:?}");
    }

    #[test]
    fn detections_on_crowd_regions_are_ignored_however_many() {
        let crowd = [300.0, 300.0, 200.0, 200.0];
        let d = dataset(1, &[(1, 1, A, false), (1, 1, crowd, true)]);
        let results = [
            found(1, 1, [310.0, 310.0, 50.0, 50.0], 0.95),
            found(1, 1, [400.0, 400.0, 80.0, 80.0], 0.9),
            found(1, 1, A, 0.5),
        ];
        assert!(close(summary(&d, &results).map, 1.0));
        // The same region not marked crowd: an object, two detections there, one of them false.
        let plain = dataset(1, &[(1, 1, A, false), (1, 1, crowd, false)]);
        assert!(summary(&plain, &results).map.unwrap() < 0.9);
    }

    #[test]
    fn detections_on_images_without_annotations_are_false_positives() {
        let d = dataset(3, &[(1, 1, A, false)]);
        // Image 2 has nothing; its detection outranks the true one: precision 1/2 at every recall.
        let s = summary(&d, &[found(1, 1, A, 0.5), found(2, 1, A, 0.9)]);
        assert!(close(s.map, 0.5), "{s:?}");
        // Image 3 has nothing and nothing is found there: it changes nothing.
        assert!(close(summary(&d, &[found(1, 1, A, 0.5)]).map, 1.0));
    }

    #[test]
    fn area_ranges_split_by_the_annotations_area() {
        let small = [0.0, 0.0, 20.0, 20.0];
        let d = dataset(1, &[(1, 1, small, false), (1, 2, A, false)]);
        let s = summary(&d, &[found(1, 1, small, 0.9)]);
        assert!(close(s.map_small, 1.0) && close(s.map_large, 0.0), "{s:?}");
        assert_eq!(s.map_medium, None, "no medium object");
        assert!(close(s.map, 0.5), "category 2 found nothing: {s:?}");
        let per_class = evaluate(&d, &[found(1, 1, small, 0.9)]).per_class();
        assert_eq!(per_class.len(), 2);
        assert!(close(per_class[0].ap, 1.0) && close(per_class[1].ap, 0.0));
    }

    #[test]
    fn a_category_without_ground_truth_is_left_out_of_the_means() {
        let d = dataset(1, &[(1, 1, A, false)]);
        let e = evaluate(&d, &[found(1, 1, A, 0.9), found(1, 2, B, 0.8)]);
        assert!(
            close(e.summary().map, 1.0),
            "category 2's false positive is not averaged in"
        );
        assert_eq!(e.per_class()[1].ap, None);
        assert_eq!(e.detections, 2);
    }

    #[test]
    fn results_outside_the_dataset_are_not_scored() {
        let d = dataset(1, &[(1, 1, A, false)]);
        let e = evaluate(
            &d,
            &[
                found(1, 1, A, 0.9),
                found(9, 1, A, 0.95),
                found(1, 7, A, 0.95),
            ],
        );
        assert_eq!(e.detections, 1);
        assert!(close(e.summary().map, 1.0));
    }

    #[test]
    fn at_most_one_hundred_detections_per_image_and_category_count() {
        let d = dataset(1, &[(1, 1, A, false)]);
        // 100 misses outrank the hit: the hit is the 101st and is cut.
        let mut results: Vec<ScoredBox> = (0..100)
            .map(|i| found(1, 1, [500.0 + f64::from(i), 0.0, 5.0, 5.0], 0.9))
            .collect();
        results.push(found(1, 1, A, 0.1));
        assert!(close(summary(&d, &results).map, 0.0));
        results.remove(0);
        assert!(summary(&d, &results).map.unwrap() > 0.0);
    }

    #[test]
    fn matches_count_at_iou_one_half_without_crowd_regions() {
        let crowd = [300.0, 300.0, 200.0, 200.0];
        let d = dataset(
            2,
            &[(1, 1, A, false), (1, 1, crowd, true), (2, 2, B, false)],
        );
        let e = evaluate(
            &d,
            &[
                // IoU 0.667 with A: found at 0.50 (not at 0.75).
                found(1, 1, [10.0, 10.0, 100.0, 66.7], 0.8),
                found(1, 1, [310.0, 310.0, 50.0, 50.0], 0.7),
                found(2, 2, [0.0, 0.0, 5.0, 5.0], 0.4),
            ],
        );
        assert_eq!(e.matches.objects, 2, "the crowd region is not an object");
        let mut detections = e.matches.detections.clone();
        detections.sort_by(|a, b| b.0.total_cmp(&a.0));
        assert_eq!(detections, vec![(0.8, true), (0.4, false)]);
        let p = e.matches.at(0.5);
        assert!((p.precision, p.recall) == (1.0, 0.5), "{p:?}");
    }

    #[test]
    fn thresholds_are_numpys() {
        // numpy.linspace(.5, 0.95, 10) and numpy.linspace(0, 1, 101), as pycocotools builds them.
        let t = iou_thresholds();
        assert_eq!((t[0], t[5], t[9]), (0.5, 0.75, 0.95));
        assert_eq!(t[1], 0.55);
        let r = recall_thresholds();
        assert_eq!((r[35], r[100]), (35.0 * 0.01, 1.0));
        assert_ne!(r[35], 0.35, "35 * 0.01 is not the double nearest 0.35");
        assert_ne!(t[8], 0.9, "nor is numpy's 9th IoU threshold");
    }
}
