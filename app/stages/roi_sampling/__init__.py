"""The RoI sampling stage: the foreground and background RoIs one training step of the head learns from."""
