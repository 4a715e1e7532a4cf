"""Detection: anchors, RoI pooling, NMS, backbones, the detector generations, the CNN-code cache, training,
checkpoints, evaluation and matching detections against the ground truth."""
