"""facenet-pytorch's MTCNN ``detect_face`` (2.5.3), faster on CPU and bit for bit the same result.

Most of its time went to area resampling (``F.interpolate(mode="area")``): once per pyramid
level over the whole photo, and once per R-Net/O-Net candidate in a Python loop. Area
resampling is adaptive average pooling, so here every bin's sum is read from one summed-area
table of the photo, for all levels and all candidates at once, and divided the way PyTorch's
kernel divides (by the bin's height, then by its width, in float32): the same pixels.
Everything else is facenet-pytorch's own: its P-, R- and O-Net, ``generateBoundingBox``,
``batched_nms``, ``rerec``, ``pad`` and ``bbreg``, called in the same order.

``pool_channels_last`` halves R-Net's and O-Net's own time, and ``trace_nets`` takes another
fifth off detection, both again without changing a bit.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from facenet_pytorch.models.utils.detect_face import (
    batched_nms,
    batched_nms_numpy,
    bbreg,
    fixed_batch_process,
    generateBoundingBox,
    pad,
    rerec,
)
from torch import nn


def summed_area_table(images: np.ndarray) -> torch.Tensor:
    """(B, H+1, W+1, C) sums of all pixels above and left of each corner of (B, H, W, C) uint8
    images. Sums are exact integers: int32 holds them up to 8.4 million pixels and is quicker to
    build than float64, which the rare larger photo gets."""
    batch, height, width, channels = images.shape
    dtype = torch.int32 if 255 * height * width < 2**31 else torch.float64
    table = torch.empty(batch, height + 1, width + 1, channels, dtype=dtype)
    table[:, 0] = 0
    table[:, :, 0] = 0
    inner = table[:, 1:, 1:]
    pixels = torch.from_numpy(np.require(images, np.uint8, "CW"))  # torch wants a writable array
    # Both passes write into the table: out-of-place passes would allocate table-sized temporaries.
    torch.cumsum(pixels, 2, dtype=dtype, out=inner)
    inner.cumsum_(1)
    return table


def _bins(start: torch.Tensor, stop: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive pooling's bins of each range [start, stop): [floor(i*n/count), ceil((i+1)*n/count))."""
    i = torch.arange(count)
    length = (stop - start)[:, None]
    return start[:, None] + i * length // count, start[:, None] + ((i + 1) * length + count - 1) // count


def area_resample(
    table: torch.Tensor,
    image_inds: torch.Tensor,
    top: torch.Tensor,
    bottom: torch.Tensor,
    left: torch.Tensor,
    right: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """Each crop ``[top:bottom, left:right]`` of image ``image_inds[k]`` resized to ``size`` as
    ``F.interpolate(crop, size, mode="area")`` does it: (K, C, height, width) float32, a
    channels-last view."""
    rows_from, rows_to = _bins(top, bottom, size[0])
    cols_from, cols_to = _bins(left, right, size[1])
    rows = torch.cat([rows_from, rows_to], 1)[:, :, None]
    cols = torch.cat([cols_from, cols_to], 1)[:, None, :]
    _, table_height, table_width, channels = table.shape
    corners = (image_inds[:, None, None] * table_height + rows) * table_width + cols
    corners = table.view(-1, channels).index_select(0, corners.view(-1)).view(*corners.shape, channels)
    h, w = size
    sums = corners[:, h:] - corners[:, :h]  # each bin's rows, at both of its column edges
    sums = sums[:, :, w:] - sums[:, :, :w]
    bin_height = (rows_to - rows_from).to(torch.float32)[:, :, None, None]
    bin_width = (cols_to - cols_from).to(torch.float32)[:, None, :, None]
    means = sums.to(torch.float32) / bin_height / bin_width  # PyTorch's order of division, so the same bits
    return means.permute(0, 3, 1, 2)


def _normalize(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - 127.5) * 0.0078125


def _clip(boxes, image_inds, width, height):
    """Each box's crop edges (top, bottom, left, right) as facenet-pytorch's ``pad`` and loop cut it.

    Boxes with nothing left inside the photo are dropped: facenet-pytorch skips their crop but
    keeps the box, so its crops and boxes go out of step and it raises."""
    y, ey, x, ex = (torch.from_numpy(v).long() for v in pad(boxes, width, height))
    inside = (ey > y - 1) & (ex > x - 1)
    return boxes[inside], image_inds[inside], (y[inside] - 1, ey[inside], x[inside] - 1, ex[inside])


def _crops(table, image_inds, edges, size):
    return _normalize(area_resample(table, image_inds, *edges, (size, size)).contiguous())


def pyramid_scales(height: int, width: int, minsize: float, factor: float) -> list[float]:
    """facenet-pytorch's pyramid: from 12/minsize, times factor while the short side stays >= 12 px."""
    scale = 12.0 / minsize
    side = min(height, width) * scale
    scales = []
    while side >= 12:
        scales.append(scale)
        scale *= factor
        side *= factor
    return scales


def detect_face(images: np.ndarray, minsize, pnet, rnet, onet, threshold, factor):
    """MTCNN on (B, H, W, 3) uint8 images of one size: a list of boxes (n, 5: x1, y1, x2, y2,
    probability) and a list of landmarks (n, 5, 2), one of each per image, as facenet-pytorch's
    ``detect_face`` gives them.

    Longer than most on purpose: it follows facenet-pytorch's ``detect_face`` stage for stage
    (P-Net, R-Net, O-Net), so the two read side by side and the output stays bit for bit the same.
    """
    batch, height, width = images.shape[:3]
    table = summed_area_table(images)
    everyone = torch.arange(batch)
    zero = torch.zeros(batch, dtype=torch.long)

    # Stage 1: P-Net over the image pyramid, NMS within each level, then across levels.
    boxes, image_inds = [], []
    for scale in pyramid_scales(height, width, minsize, factor):
        size = (int(height * scale + 1), int(width * scale + 1))
        level = area_resample(table, everyone, zero, zero + height, zero, zero + width, size)
        reg, probs = pnet(_normalize(level))  # channels-last, as facenet-pytorch feeds it: convolutions round by layout
        found, found_inds = generateBoundingBox(reg, probs[:, 1], scale, threshold[0])
        pick = batched_nms(found[:, :4], found[:, 4], found_inds, 0.5)
        boxes.append(found[pick])
        image_inds.append(found_inds[pick])
    boxes, image_inds = torch.cat(boxes), torch.cat(image_inds)
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]
    box_w = boxes[:, 2] - boxes[:, 0]
    box_h = boxes[:, 3] - boxes[:, 1]
    boxes = torch.stack(
        [
            boxes[:, 0] + boxes[:, 5] * box_w,
            boxes[:, 1] + boxes[:, 6] * box_h,
            boxes[:, 2] + boxes[:, 7] * box_w,
            boxes[:, 3] + boxes[:, 8] * box_h,
            boxes[:, 4],
        ],
        dim=1,
    )
    boxes = rerec(boxes)

    # Stage 2: R-Net on 24 px crops of the candidates.
    boxes, image_inds, edges = _clip(boxes, image_inds, width, height)
    if len(boxes) > 0:
        reg, probs = fixed_batch_process(_crops(table, image_inds, edges, 24), rnet)
        score = probs[:, 1]
        passed = score > threshold[1]
        boxes = torch.cat((boxes[passed, :4], score[passed, None]), dim=1)
        image_inds, reg = image_inds[passed], reg[passed]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, reg = boxes[pick], image_inds[pick], reg[pick]
        boxes = rerec(bbreg(boxes, reg))

    # Stage 3: O-Net on 48 px crops: final boxes, probabilities and landmarks.
    points = torch.zeros(0, 5, 2)
    boxes, image_inds, edges = _clip(boxes, image_inds, width, height)
    if len(boxes) > 0:
        reg, marks, probs = fixed_batch_process(_crops(table, image_inds, edges, 48), onet)
        score = probs[:, 1]
        passed = score > threshold[2]
        boxes = torch.cat((boxes[passed, :4], score[passed, None]), dim=1)
        image_inds, reg, marks = image_inds[passed], reg[passed], marks[passed]
        box_w = boxes[:, 2] - boxes[:, 0] + 1
        box_h = boxes[:, 3] - boxes[:, 1] + 1
        points = torch.stack(
            (box_w[:, None] * marks[:, :5] + boxes[:, None, 0] - 1, box_h[:, None] * marks[:, 5:] + boxes[:, None, 1] - 1),
            dim=2,
        )
        boxes = bbreg(boxes, reg)
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
        boxes, image_inds, points = boxes[pick], image_inds[pick], points[pick]

    boxes, points, image_inds = boxes.numpy(), points.numpy(), image_inds.numpy()
    return [boxes[image_inds == i] for i in range(batch)], [points[image_inds == i] for i in range(batch)]


def onet_landmarks(image: np.ndarray, boxes: np.ndarray, onet) -> np.ndarray:
    """MTCNN's five landmarks (n, 5, 2) for faces another detector boxed in one (H, W, 3) uint8 image:
    O-Net on each box made square, as MTCNN's last stage sees its own candidates. A box with nothing
    inside the image gets its box's centre for every point."""
    height, width = image.shape[:2]
    points = np.repeat(((boxes[:, :2] + boxes[:, 2:4]) / 2)[:, None, :], 5, axis=1).astype(np.float32)
    if len(boxes) == 0:
        return points
    square = rerec(torch.from_numpy(np.c_[boxes[:, :4], np.ones(len(boxes))].astype(np.float32)))
    y, ey, x, ex = (torch.from_numpy(v).long() for v in pad(square, width, height))
    inside = ((ey > y - 1) & (ex > x - 1)).numpy()
    if not inside.any():
        return points
    square, edges = square[inside], (y[inside] - 1, ey[inside], x[inside] - 1, ex[inside])
    table = summed_area_table(image[None])
    _, marks, _ = fixed_batch_process(_crops(table, torch.zeros(len(square), dtype=torch.long), edges, 48), onet)
    box_w = (square[:, 2] - square[:, 0] + 1)[:, None]
    box_h = (square[:, 3] - square[:, 1] + 1)[:, None]
    found = torch.stack((box_w * marks[:, :5] + square[:, None, 0] - 1, box_h * marks[:, 5:] + square[:, None, 1] - 1), dim=2)
    points[inside] = found.numpy()
    return points


class ChannelsLastMaxPool(nn.Module):
    """A max-pool layer of R-Net or O-Net run on a channels-last copy: PyTorch's NCHW max-pool
    CPU kernel dominated their time and its channels-last kernel is far quicker. Maxima are
    exact, so the output is the same. (P-Net's input is channels-last already.)"""

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x.contiguous(memory_format=torch.channels_last)).contiguous()


def pool_channels_last(net: nn.Module) -> nn.Module:
    """Swap each max-pool layer of ``net`` (in place) for its channels-last twin; returns ``net``."""
    for name, child in list(net.named_children()):
        if isinstance(child, nn.MaxPool2d):
            setattr(net, name, ChannelsLastMaxPool(child))
    return net


def trace_nets(mtcnn: nn.Module) -> None:
    """Replace MTCNN's P-, R- and O-Net (in place) by TorchScript traces of themselves.

    A traced net runs all its layers in C++ with the GIL released instead of one Python call
    per layer, so a photo detects faster and other threads run meanwhile, which helps when
    photos are detected side by side (timings: docs/speed-history.md). The ops are the same, so
    are the bits (the tests compare with facenet-pytorch). ``torch.jit.trace`` is deprecated
    for ``torch.export``, whose programs run layer by layer in Python again; the torch that
    torchvision 0.29 pins still has it.
    """
    examples = {"pnet": torch.zeros(1, 3, 24, 24).contiguous(memory_format=torch.channels_last),
                "rnet": torch.zeros(2, 3, 24, 24), "onet": torch.zeros(2, 3, 48, 48)}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace.* is deprecated", category=FutureWarning)
        for name, example in examples.items():
            setattr(mtcnn, name, torch.jit.trace(getattr(mtcnn, name), example, check_trace=False))
