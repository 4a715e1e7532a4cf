"""The RoI pooling grid stage: how one RoI becomes the head's fixed-size input (controller + panel)."""
