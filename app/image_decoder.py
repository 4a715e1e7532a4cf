"""Decoding the current image's pixels in the background when it is big, one decode at a time.

Why bounded: a 12-megapixel photo takes a noticeable fraction of a second to decode. Starting a thread per
visited image (as we once did) means that holding the next-image key over a folder of phone photos starts
dozens of full-size decodes at once, all competing for the CPU and memory while only the last one will be
shown. A ``LatestRunner`` keeps at most one decode running and one waiting: a new request replaces the
waiting one, and a result for an image the user has left is dropped. (One decoder call cannot be
interrupted, so the running decode finishes; it is simply not shown.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.workers import Job, LatestRunner, WorkerPool
from models.data.io import DecodedImage, ImageError, ImageInfo, read_image

#: Images with more stored pixels than this decode in a background thread; smaller ones decode at once,
#: which keeps navigation simple.
ASYNC_DECODE_PIXELS = 4_000_000


def placeholder_image(info: ImageInfo) -> DecodedImage:
    """A 1×1 grey preview stretched over the full image size: the geometry is right at once, so the boxes
    can be shown and edited while the real pixels decode."""
    return DecodedImage(np.full((1, 1, 3), 64, np.uint8), info.width, info.height, info.orientation,
                        info.stored_width, info.stored_height, 1.0 / max(1, info.width), info.path)


def decode_job(job: Job, index: int, path: Path) -> tuple[int, DecodedImage | ImageError]:
    """(index, pixels or the reason they cannot be shown); a decode error is a result, not a crash."""
    job.check()  # a request replaced before its thread got going costs nothing
    try:
        return index, read_image(path)
    except ImageError as exc:
        return index, exc


class BackgroundDecoder(QObject):
    """Latest-wins background decoding; ``decoded(index, DecodedImage | ImageError)`` for the latest request."""

    decoded = Signal(int, object)

    def __init__(self, pool: WorkerPool, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = LatestRunner(pool, decode_job, self._on_result, on_error=self._on_error, parent=self)
        self._index = -1

    @property
    def busy(self) -> bool:
        return self._runner.busy

    def request(self, index: int, path: Path) -> None:
        """Decode ``path`` for entry ``index``; any earlier request's result will not be delivered."""
        self._index = index
        self._runner.request(index, path)

    def cancel(self) -> None:
        """Nothing requested so far will be delivered (the user moved to an image that decodes at once)."""
        self._index = -1
        self._runner.cancel()

    def _on_result(self, value: tuple[int, DecodedImage | ImageError]) -> None:
        index, result = value
        if index == self._index:
            self.decoded.emit(index, result)

    def _on_error(self, message: str) -> None:
        if self._index >= 0:  # an unexpected exception in the decoder: say so, do not crash
            self.decoded.emit(self._index, ImageError(message.splitlines()[0] if message else "decode failed"))


__all__ = ["ASYNC_DECODE_PIXELS", "BackgroundDecoder", "decode_job", "placeholder_image"]
