"""Selective Search's compiled kernels: texture codes and region features per pixel, the adjacency of regions,
the similarity terms, and the greedy grouping itself (a max-heap of neighbour similarities with lazy deletion),
plus the near-duplicate filter of the ranked boxes.

Why apart from models/proposals/selective_search.py: these are numba functions over plain arrays — the part
that must be fast and is tested through the pipeline — while that module holds the pipeline, its settings and
the inspectable results (``Merge``, ``Hierarchy``, ``Proposals``). Why numba at all: see that module's
docstring.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Colour histogram bins per channel (the paper's 25).
COLOR_BINS = 25
#: Gaussian-derivative orientations and bins per orientation of the texture histogram (the paper's 8 × 10).
TEXTURE_ORIENTATIONS = 8
TEXTURE_BINS = 10


@njit(cache=True, nogil=True)
def _texture_codes(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Per pixel and channel, the bin (0..9) of each of 8 oriented Gaussian derivatives, 255 for none.

    Orientation o (o·45°) responds with cos·gx + sin·gy where that is positive (o and o+4 are the two signs
    of one axis); a pixel adds to the histogram of the orientations it responds to only. Counting the
    non-responses too would put half of every region's mass in bin 0 of some orientation, squeezing texture
    similarity into [0.5, 1] (measured: slightly lower recall on coco_tiny). Magnitudes are scaled by the
    channel's largest response in the image so the 10 bins span what the image actually contains.
    """
    h, w, c = gx.shape
    cs = np.empty(TEXTURE_ORIENTATIONS, np.float32)
    sn = np.empty(TEXTURE_ORIENTATIONS, np.float32)
    for o in range(TEXTURE_ORIENTATIONS):
        ang = o * np.pi / 4.0
        cs[o] = np.cos(ang)
        sn[o] = np.sin(ang)
    out = np.empty((h, w, c * TEXTURE_ORIENTATIONS), np.uint8)
    for ch in range(c):
        mx = 0.0
        for y in range(h):
            for x in range(w):
                m = np.sqrt(gx[y, x, ch] * gx[y, x, ch] + gy[y, x, ch] * gy[y, x, ch])
                if m > mx:
                    mx = m
        scale = TEXTURE_BINS / mx if mx > 0 else 0.0
        for y in range(h):
            for x in range(w):
                a = gx[y, x, ch]
                b = gy[y, x, ch]
                for o in range(TEXTURE_ORIENTATIONS):
                    r = cs[o] * a + sn[o] * b
                    q = 255
                    if r > 0:
                        q = int(r * scale)
                        if q >= TEXTURE_BINS:
                            q = TEXTURE_BINS - 1
                    out[y, x, ch * TEXTURE_ORIENTATIONS + o] = q
    return out


@njit(cache=True, nogil=True)
def _region_features(labels: np.ndarray, n: int, channels: np.ndarray, tcodes: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """L1-normalised colour [n, 25·C] and texture [n, 80·C] histograms of each region (texture code 255:
    no response, not counted)."""
    h, w = labels.shape
    c = channels.shape[2]
    dt = tcodes.shape[2]
    hc = np.zeros((n, c * COLOR_BINS), np.float32)
    ht = np.zeros((n, dt * TEXTURE_BINS), np.float32)
    for y in range(h):
        for x in range(w):
            r = labels[y, x]
            for ch in range(c):
                hc[r, ch * COLOR_BINS + (channels[y, x, ch] * COLOR_BINS) // 256] += 1.0
            for j in range(dt):
                if tcodes[y, x, j] != 255:
                    ht[r, j * TEXTURE_BINS + tcodes[y, x, j]] += 1.0
    for r in range(n):
        s = 0.0
        for i in range(hc.shape[1]):
            s += hc[r, i]
        if s > 0:
            for i in range(hc.shape[1]):
                hc[r, i] /= s
        s = 0.0
        for i in range(ht.shape[1]):
            s += ht[r, i]
        if s > 0:
            for i in range(ht.shape[1]):
                ht[r, i] /= s
    return hc, ht


@njit(cache=True, nogil=True)
def _adjacent_pairs(labels: np.ndarray, n: int) -> np.ndarray:
    """[m, 2] int32 pairs (a < b) of regions touching in 8-connectivity (as the segmentation graph)."""
    h, w = labels.shape
    codes = np.empty(4 * h * w + 1, np.int64)
    m = 0
    for y in range(h):
        for x in range(w):
            a = labels[y, x]
            for d in range(4):
                if d == 0:
                    yy, xx = y, x + 1
                elif d == 1:
                    yy, xx = y + 1, x
                elif d == 2:
                    yy, xx = y + 1, x + 1
                else:
                    yy, xx = y + 1, x - 1
                if yy >= h or xx < 0 or xx >= w:
                    continue
                b = labels[yy, xx]
                if a != b:
                    lo = min(a, b)
                    hi = max(a, b)
                    codes[m] = np.int64(lo) * n + hi
                    m += 1
    u = np.unique(codes[:m])
    pairs = np.empty((u.shape[0], 2), np.int32)
    for i in range(u.shape[0]):
        pairs[i, 0] = u[i] // n
        pairs[i, 1] = u[i] % n
    return pairs


@njit(cache=True, nogil=True, inline="always")
def _terms(a: int, b: int, hc: np.ndarray, ht: np.ndarray, size: np.ndarray, box: np.ndarray,
           im_size: float, want_c: bool, want_t: bool) -> tuple[float, float, float, float]:
    sc = 0.0
    if want_c:
        for i in range(hc.shape[1]):
            sc += min(hc[a, i], hc[b, i])
    st = 0.0
    if want_t:
        for i in range(ht.shape[1]):
            st += min(ht[a, i], ht[b, i])
    ss = 1.0 - (size[a] + size[b]) / im_size
    bw = max(box[a, 2], box[b, 2]) - min(box[a, 0], box[b, 0])
    bh = max(box[a, 3], box[b, 3]) - min(box[a, 1], box[b, 1])
    sf = 1.0 - (bw * bh - size[a] - size[b]) / im_size
    return sc, st, ss, sf


@njit(cache=True, nogil=True, inline="always")
def _heap_push(hk: np.ndarray, ha: np.ndarray, hb: np.ndarray, count: int, key: float, a: int, b: int) -> None:
    i = count
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] >= key:
            break
        hk[i] = hk[p]
        ha[i] = ha[p]
        hb[i] = hb[p]
        i = p
    hk[i] = key
    ha[i] = a
    hb[i] = b


@njit(cache=True, nogil=True, inline="always")
def _heap_pop(hk: np.ndarray, ha: np.ndarray, hb: np.ndarray, count: int) -> None:
    """Removes the top (caller read it); ``count`` is the size before removal."""
    last = count - 1
    key = hk[last]
    a = ha[last]
    b = hb[last]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= last:
            break
        if c + 1 < last and hk[c + 1] > hk[c]:
            c += 1
        if hk[c] <= key:
            break
        hk[i] = hk[c]
        ha[i] = ha[c]
        hb[i] = hb[c]
        i = c
    hk[i] = key
    ha[i] = a
    hb[i] = b


@njit(cache=True, nogil=True)
def _group(sizes0: np.ndarray, boxes0: np.ndarray, hc0: np.ndarray, ht0: np.ndarray, pairs: np.ndarray,
           use_c: bool, use_t: bool, use_s: bool, use_f: bool, im_size: float):
    """Greedy hierarchical grouping. Returns (boxes [R,4], sizes [R], merge pairs, terms, similarity).

    Regions never change once formed (a merge makes a new id), so a heap entry is valid exactly when both
    of its regions are still unmerged: no decrease-key needed.
    """
    n = sizes0.shape[0]
    cap_r = 2 * n - 1 if n > 0 else 0
    size = np.zeros(cap_r, np.float64)
    box = np.zeros((cap_r, 4), np.float64)
    hc = np.zeros((cap_r, hc0.shape[1]), np.float32)
    ht = np.zeros((cap_r, ht0.shape[1]), np.float32)
    for r in range(n):
        size[r] = sizes0[r]
        for j in range(4):
            box[r, j] = boxes0[r, j]
        hc[r] = hc0[r]
        ht[r] = ht0[r]
    up = np.arange(cap_r).astype(np.int32)  # union-find towards the live region containing a dead one
    alive = np.zeros(cap_r, np.bool_)
    alive[:n] = True
    # neighbour lists in a growable pool: region r's list is pool[start[r]:start[r] + length[r]]
    m = pairs.shape[0]
    length = np.zeros(cap_r, np.int64)
    start = np.zeros(cap_r, np.int64)
    for e in range(m):
        length[pairs[e, 0]] += 1
        length[pairs[e, 1]] += 1
    pos = 0
    for r in range(n):
        start[r] = pos
        pos += length[r]
    pool = np.empty(max(2 * m, 16) * 2, np.int32)
    fill = np.zeros(n, np.int64)
    for e in range(m):
        a = pairs[e, 0]
        b = pairs[e, 1]
        pool[start[a] + fill[a]] = b
        fill[a] += 1
        pool[start[b] + fill[b]] = a
        fill[b] += 1
    pool_end = pos
    # max-heap of (similarity, a, b)
    hcap = max(2 * m, 16)
    hk = np.empty(hcap, np.float64)
    ha = np.empty(hcap, np.int32)
    hb = np.empty(hcap, np.int32)
    count = 0
    for e in range(m):
        a = pairs[e, 0]
        b = pairs[e, 1]
        sc, st, ss, sf = _terms(a, b, hc, ht, size, box, im_size, use_c, use_t)
        key = use_c * sc + use_t * st + use_s * ss + use_f * sf
        _heap_push(hk, ha, hb, count, key, a, b)
        count += 1
    steps = max(n - 1, 0)
    merge_pairs = np.zeros((steps, 2), np.int32)
    merge_terms = np.zeros((steps, 4), np.float32)
    merge_sim = np.zeros(steps, np.float32)
    mark = np.full(cap_r, -1, np.int32)
    scratch = np.empty(cap_r, np.int32)
    step = 0
    while count > 0 and step < steps:
        key = hk[0]
        a = ha[0]
        b = hb[0]
        _heap_pop(hk, ha, hb, count)
        count -= 1
        if not (alive[a] and alive[b]):
            continue
        t = n + step
        sc, st, ss, sf = _terms(a, b, hc, ht, size, box, im_size, True, True)
        merge_pairs[step, 0] = a
        merge_pairs[step, 1] = b
        merge_terms[step, 0] = sc
        merge_terms[step, 1] = st
        merge_terms[step, 2] = ss
        merge_terms[step, 3] = sf
        merge_sim[step] = key
        sa = size[a]
        sb = size[b]
        size[t] = sa + sb
        box[t, 0] = min(box[a, 0], box[b, 0])
        box[t, 1] = min(box[a, 1], box[b, 1])
        box[t, 2] = max(box[a, 2], box[b, 2])
        box[t, 3] = max(box[a, 3], box[b, 3])
        wa = sa / (sa + sb)
        wb = 1.0 - wa
        for i in range(hc.shape[1]):
            hc[t, i] = wa * hc[a, i] + wb * hc[b, i]
        for i in range(ht.shape[1]):
            ht[t, i] = wa * ht[a, i] + wb * ht[b, i]
        alive[a] = False
        alive[b] = False
        alive[t] = True
        up[a] = t
        up[b] = t
        # the new region's neighbours: live owners of a's and b's neighbours, each once
        k = 0
        for src in (a, b):
            for p in range(start[src], start[src] + length[src]):
                x = pool[p]
                while up[x] != x:
                    up[x] = up[up[x]]
                    x = up[x]
                if x != t and mark[x] != t:
                    mark[x] = t
                    scratch[k] = x
                    k += 1
        if pool_end + k > pool.shape[0]:
            bigger = np.empty(max(2 * pool.shape[0], pool_end + k), np.int32)
            bigger[:pool_end] = pool[:pool_end]
            pool = bigger
        start[t] = pool_end
        length[t] = k
        pool[pool_end:pool_end + k] = scratch[:k]
        pool_end += k
        if count + k > hk.shape[0]:
            new_cap = max(2 * hk.shape[0], count + k)
            hk2 = np.empty(new_cap, np.float64)
            ha2 = np.empty(new_cap, np.int32)
            hb2 = np.empty(new_cap, np.int32)
            hk2[:count] = hk[:count]
            ha2[:count] = ha[:count]
            hb2[:count] = hb[:count]
            hk, ha, hb = hk2, ha2, hb2
        for i in range(k):
            x = scratch[i]
            sc, st, ss, sf = _terms(t, x, hc, ht, size, box, im_size, use_c, use_t)
            key = use_c * sc + use_t * st + use_s * ss + use_f * sf
            _heap_push(hk, ha, hb, count, key, t, x)
            count += 1
        step += 1
    nr = n + step
    return box[:nr].copy(), size[:nr].copy(), merge_pairs[:step].copy(), merge_terms[:step].copy(), \
        merge_sim[:step].copy()


@njit(cache=True, nogil=True)
def _owner_at(parent: np.ndarray, n: int, stop: int) -> np.ndarray:
    """For each initial region, its ancestor among regions < ``stop`` that is furthest up the tree."""
    out = np.empty(n, np.int32)
    for r in range(n):
        x = r
        while parent[x] >= 0 and parent[x] < stop:
            x = parent[x]
        out[r] = x
    return out


@njit(cache=True, nogil=True)
def _near_duplicate_keep(b: np.ndarray, thr: float) -> np.ndarray:
    """Greedy in rank order: drop a box whose IoU with an earlier kept box is ≥ ``thr``.

    IoU ≥ t needs |x1ᵢ - x1ⱼ| ≤ (1 - t) · max(wᵢ, wⱼ) and wᵢ ≥ t · wⱼ, so with the boxes sorted by x1 each one
    is compared only with those within (1 - t) / t of its width: a few ms for 3,000 boxes instead of ~40.
    """
    n = b.shape[0]
    keep = np.ones(n, np.bool_)
    if n < 2 or thr >= 1.0:
        return keep
    order = np.argsort(b[:, 0], kind="mergesort")
    pos = np.empty(n, np.int64)
    for p in range(n):
        pos[order[p]] = p
    x1s = np.empty(n, np.float64)
    for p in range(n):
        x1s[p] = b[order[p], 0]
    win = (1.0 - thr) / thr
    for j in range(n):
        aj = (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
        reach = win * (b[j, 2] - b[j, 0])
        for direction in (-1, 1):
            p = pos[j] + direction
            while 0 <= p < n:
                if abs(x1s[p] - b[j, 0]) > reach:
                    break
                i = order[p]
                p += direction
                if i >= j or not keep[i]:
                    continue
                iw = min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0])
                ih = min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1])
                if iw <= 0 or ih <= 0:
                    continue
                inter = iw * ih
                if inter >= thr * ((b[i, 2] - b[i, 0]) * (b[i, 3] - b[i, 1]) + aj - inter):
                    keep[j] = False
                    break
            if not keep[j]:
                break
    return keep
