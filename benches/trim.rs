//! What handing freed memory back after a request costs (`memory::release_free_memory`, glibc's
//! `malloc_trim`): a warm `detect` of each photo alone against the same `detect` followed by a trim, the
//! two interleaved in one run so that they see the same machine. The photo's pages come back from the
//! kernel (page faults) on the next request, so the cost lands in the request after the trim: the figure is
//! the time per request in a steady stream of each.
//!
//! The function trims after images of 8 MiB of pixels or more (`memory::TRIM_AFTER_BYTES`); this shows
//! what trimming after every request would cost for the small photos below it.
//!
//!     cargo bench --bench trim

use std::time::Instant;

use object_detector::core::memory::release_free_memory;
use object_detector::{DetectOptions, Detector};

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |pages| pages * 4096.0 / (1 << 20) as f64)
}

fn main() {
    let detector = Detector::embedded().expect("the embedded model loads");
    let options = DetectOptions::default();
    let photos = [
        ("550x367 JPEG (chelsea)", "tests/images/chelsea.jpg"),
        ("512x512 PNG (astronaut)", "tests/images/astronaut.png"),
    ];
    const ROUNDS: usize = 40;
    println!("photo                       alone ms   + trim ms   ratio   RSS alone   RSS + trim");
    for (name, path) in photos {
        let bytes = std::fs::read(path).expect("a test photo");
        for _ in 0..5 {
            detector.detect(&bytes, &options).expect("detects");
        }
        let (mut alone, mut trimmed) = (Vec::new(), Vec::new());
        let (mut rss_alone, mut rss_trimmed) = (0.0, 0.0);
        // Interleaved blocks of five, so that drift (clock, other load) touches both alike.
        for round in 0..ROUNDS {
            let trim = round % 2 == 1;
            for _ in 0..5 {
                let t = Instant::now();
                detector.detect(&bytes, &options).expect("detects");
                if trim {
                    release_free_memory();
                }
                let ms = t.elapsed().as_secs_f64() * 1e3;
                if trim {
                    trimmed.push(ms);
                } else {
                    alone.push(ms);
                }
            }
            if trim {
                rss_trimmed = rss_mib();
            } else {
                rss_alone = rss_mib();
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (a, t) = (median(&mut alone), median(&mut trimmed));
        println!(
            "{name:<27} {a:>8.2}   {t:>9.2}   {:>5.3}   {rss_alone:>6.1} MiB  {rss_trimmed:>6.1} MiB",
            t / a
        );
    }
}
