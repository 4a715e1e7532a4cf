"""The pipeline stages of the window, one package or module each (anchors, RPN, RoI grid, NMS, detections…).

A stage is a controller (:class:`app.stages.base.Stage`) that wires workers to layers and owns its panel and
docks; drawing primitives stay in :mod:`app.layers`, algorithms in :mod:`models`. The main window is only a
host: it asks :func:`app.stages.registry.build_stages` for the stages and adds their docks, menu actions and
layers. The detector stages share one :class:`app.stages.detector_session.DetectorSession`: the loaded model,
the current image and its ground truth, and the latest trace of the model on that image.
"""
