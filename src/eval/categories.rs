//! Which category of a ground truth a detector's class scores as: one rule for
//! `zsq eval` (`--model` and `--detections`) and for scoring in the pipeline
//! (`thermaldetect annotations=`), so the same detections score the same everywhere.
//!
//! - The model names its classes and some names are categories: by name (classes the
//!   annotations do not have are not scored).
//! - It names them but none is a category: an error listing both sides.
//! - It names none, and has as many classes as the annotations have categories: by
//!   order (class i is the i-th category by id, as a YOLO model trained on that dataset
//!   numbers them), with a warning that states the mapping, since it is a guess.
//! - It names none and the counts differ: an error saying how to name them.
//!
//! Never a silent mAP 0: before this, an unnamed model's "class N" labels matched no
//! category and the score was 0 without a word.

use super::{CocoGt, EvalError};
use crate::detect::Detector;

/// The category id each class of a model scores as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryMap {
    /// Per class id; `None`: not scored.
    categories: Vec<Option<i64>>,
    /// With a mapping by order: the warning that states it.
    warning: Option<String>,
}

impl CategoryMap {
    /// The map for a model with `classes` classes named `names` (`None` or empty: it
    /// names none) against the categories of `gt`.
    pub fn new(names: Option<&[String]>, classes: usize, gt: &CocoGt) -> Result<Self, EvalError> {
        let categories = gt.sorted_categories();
        let category_names = || {
            categories
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match names.filter(|n| !n.is_empty()) {
            Some(names) => {
                let by_name: Vec<Option<i64>> = names
                    .iter()
                    .map(|n| categories.iter().find(|c| &c.name == n).map(|c| c.id))
                    .collect();
                if by_name.iter().all(Option::is_none) {
                    return Err(EvalError(format!(
                        "the model's classes ({}) match none of the annotations' categories ({}): annotations of another dataset, or names spelt otherwise (a labels file, one name per line, renames the classes)",
                        names.join(", "),
                        category_names()
                    )));
                }
                Ok(CategoryMap {
                    categories: by_name,
                    warning: None,
                })
            }
            None if classes == categories.len() && classes > 0 => {
                let mapping: Vec<String> = categories
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("class {i} -> {}", c.name))
                    .collect();
                Ok(CategoryMap {
                    categories: categories.iter().map(|c| Some(c.id)).collect(),
                    warning: Some(format!(
                        "the model names none of its {classes} classes: scored by order as the annotations' categories, {} (a labels file with the model's class names, one per line, replaces this guess)",
                        mapping.join(", ")
                    )),
                })
            }
            None => Err(EvalError(format!(
                "the model names none of its {classes} classes and the annotations have {} categories ({}), so classes cannot be matched by name or by order: give a labels file with the model's class names, one per line (thermaldetect `labels=`, zsq eval --labels)",
                categories.len(),
                category_names()
            ))),
        }
    }

    /// The map for `detector`'s classes (its labels, or none when it has no names).
    pub fn for_detector(detector: &Detector, gt: &CocoGt) -> Result<Self, EvalError> {
        Self::new(Some(detector.labels()), detector.layout().classes(), gt)
    }

    /// The category class `class_id` scores as; `None`: not scored.
    pub fn category(&self, class_id: usize) -> Option<i64> {
        self.categories.get(class_id).copied().flatten()
    }

    /// With a mapping by order: what it is, to show the user once.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Categories car (id 3), person (id 1), bicycle (id 7), listed out of id order.
    fn gt() -> CocoGt {
        CocoGt::from_json(
            r#"{"images":[],"annotations":[],"categories":[
                {"id":3,"name":"car"},{"id":1,"name":"person"},{"id":7,"name":"bicycle"}]}"#,
        )
        .unwrap()
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn named_classes_map_by_name_and_unknown_ones_are_not_scored() {
        let names = names(&["dog", "person", "car"]);
        let map = CategoryMap::new(Some(&names), 3, &gt()).unwrap();
        assert_eq!(
            (0..4).map(|c| map.category(c)).collect::<Vec<_>>(),
            [None, Some(1), Some(3), None]
        );
        assert_eq!(map.warning(), None);
    }

    #[test]
    fn named_classes_that_match_no_category_are_an_error_listing_both_sides() {
        let names = names(&["hot", "cold"]);
        let e = CategoryMap::new(Some(&names), 2, &gt()).unwrap_err().0;
        assert!(
            e.starts_with(
                "the model's classes (hot, cold) match none of the annotations' categories (person, car, bicycle): annotations of another dataset"
            ),
            "{e}"
        );
    }

    #[test]
    fn unnamed_classes_as_many_as_the_categories_map_by_id_order_with_a_warning() {
        for unnamed in [None, Some(&[][..])] {
            let map = CategoryMap::new(unnamed, 3, &gt()).unwrap();
            assert_eq!(
                (0..4).map(|c| map.category(c)).collect::<Vec<_>>(),
                [Some(1), Some(3), Some(7), None]
            );
            let w = map.warning().expect("a warning states the mapping");
            assert!(
                w.contains("class 0 -> person, class 1 -> car, class 2 -> bicycle"),
                "{w}"
            );
            assert!(w.contains("labels file"), "{w}");
        }
    }

    #[test]
    fn unnamed_classes_of_another_count_are_an_error_saying_how_to_name_them() {
        let e = CategoryMap::new(None, 80, &gt()).unwrap_err().0;
        assert!(
            e.starts_with(
                "the model names none of its 80 classes and the annotations have 3 categories (person, car, bicycle)"
            ),
            "{e}"
        );
        assert!(
            e.contains("thermaldetect `labels=`, zsq eval --labels"),
            "{e}"
        );
        let empty = CocoGt::default();
        assert!(CategoryMap::new(None, 0, &empty).is_err());
    }
}
