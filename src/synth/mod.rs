//! Synthetic radiometric thermal street scenes with COCO labels.
