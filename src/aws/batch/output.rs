//! Where results go, and the loop guard: a function that writes into the bucket it is notified from
//! would notify itself forever, so whatever lies where it writes is never processed.

/// The output location: `OUTPUT_BUCKET` (default: the object's own bucket) and `OUTPUT_PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// `None`: each result goes to the bucket its object came from.
    pub bucket: Option<String>,
    pub prefix: String,
}

impl Default for Output {
    fn default() -> Output {
        Output {
            bucket: None,
            prefix: "detections/".into(),
        }
    }
}

/// What a result is written as.
pub const RESULT_SUFFIX: &str = ".json";

impl Output {
    /// Refuses, at start-up, a location where results would be taken for new photos. `input_prefix`
    /// is `INPUT_PREFIX`, the part of the bucket the notifications cover, when it is set.
    pub fn check(&self, input_prefix: Option<&str>) -> Result<(), String> {
        if self.bucket.is_some() {
            // Another bucket: everything the function writes there is under the guard below.
            return Ok(());
        }
        if self.prefix.is_empty() {
            return Err("OUTPUT_PREFIX is empty and OUTPUT_BUCKET is unset: results would be written \
                        among the photos, and each would notify the function again; set OUTPUT_PREFIX \
                        (default `detections/`) or OUTPUT_BUCKET"
                .into());
        }
        if let Some(input) = input_prefix {
            if self.prefix.starts_with(input) {
                return Err(format!(
                    "OUTPUT_PREFIX {:?} lies inside INPUT_PREFIX {input:?} in the same bucket: each \
                     result would notify the function again; write results outside the notified prefix",
                    self.prefix
                ));
            }
            if input.starts_with(&self.prefix) {
                return Err(format!(
                    "INPUT_PREFIX {input:?} lies inside OUTPUT_PREFIX {:?}: every photo would be \
                     skipped as a result of this function",
                    self.prefix
                ));
            }
        }
        Ok(())
    }

    /// The bucket the results of an object of `source_bucket` go to.
    pub fn bucket_for<'a>(&'a self, source_bucket: &'a str) -> &'a str {
        self.bucket.as_deref().unwrap_or(source_bucket)
    }

    /// The result of the object at `key`: the same key for every processing of it, so a retry or a
    /// reprocessing overwrites it.
    pub fn result_key(&self, key: &str) -> String {
        format!("{}{key}{RESULT_SUFFIX}", self.prefix)
    }

    /// The result in an export format (`OUTPUT_FORMAT`): `OUTPUT_PREFIX + key + .txt` and the like.
    pub fn export_key(&self, key: &str, extension: &str) -> String {
        format!("{}{key}.{extension}", self.prefix)
    }

    /// The annotated picture beside the result.
    pub fn picture_key(&self, key: &str, extension: &str) -> String {
        format!("{}{key}.{extension}", self.prefix)
    }

    /// Whether an object is one this function writes (or would write): never processed.
    pub fn is_output(&self, bucket: &str, key: &str) -> bool {
        self.bucket_for(bucket) == bucket && key.starts_with(&self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(bucket: Option<&str>, prefix: &str) -> Output {
        Output {
            bucket: bucket.map(str::to_string),
            prefix: prefix.into(),
        }
    }

    #[test]
    fn results_and_pictures_sit_under_the_prefix_and_are_never_processed() {
        let out = Output::default();
        assert_eq!(out.result_key("a/b c.jpg"), "detections/a/b c.jpg.json");
        assert_eq!(
            out.picture_key("a/b c.jpg", "jpg"),
            "detections/a/b c.jpg.jpg"
        );
        assert_eq!(out.bucket_for("photos"), "photos");
        assert!(out.is_output("photos", &out.result_key("x.jpg")));
        assert!(out.is_output("photos", &out.picture_key("x.jpg", "jpg")));
        assert!(!out.is_output("photos", "x.jpg"));
        assert!(!out.is_output("photos", "incoming/detections/x.jpg"));
        let elsewhere = at(Some("results"), "");
        assert_eq!(elsewhere.bucket_for("photos"), "results");
        assert!(elsewhere.is_output("results", "anything.jpg"));
        assert!(!elsewhere.is_output("photos", "anything.jpg"));
    }

    #[test]
    fn locations_that_would_retrigger_are_refused_at_start_up() {
        assert!(Output::default().check(None).is_ok());
        assert!(Output::default().check(Some("incoming/")).is_ok());
        assert!(at(Some("results"), "").check(Some("")).is_ok());
        let empty = at(None, "").check(None).unwrap_err();
        assert!(empty.contains("OUTPUT_PREFIX is empty"), "{empty}");
        let inside = at(None, "incoming/detections/")
            .check(Some("incoming/"))
            .unwrap_err();
        assert!(inside.contains("lies inside INPUT_PREFIX"), "{inside}");
        let everything = Output::default().check(Some("")).unwrap_err();
        assert!(
            everything.contains("lies inside INPUT_PREFIX"),
            "{everything}"
        );
        let swallowed = at(None, "data/").check(Some("data/in/")).unwrap_err();
        assert!(
            swallowed.contains("every photo would be skipped"),
            "{swallowed}"
        );
    }
}
