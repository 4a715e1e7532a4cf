"""Region proposals: Felzenszwalb superpixels, colour spaces, Selective Search and its grouping, the on-disk
proposal cache, and proposal-quality metrics (recall, MABO, average recall)."""
