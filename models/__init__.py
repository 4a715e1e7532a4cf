"""All computation of R-CNN Explorer. Nothing in this package imports Qt."""
