"""DistributedDataParallel on the CPU (gloo), two processes: gradients are averaged, so after a step on
different images every rank holds the same weights; and the real ``train`` loop runs under torchrun's
environment with only rank 0 writing the checkpoint, its prototype calibration fitted by both ranks on their
halves of the images and added up: the mean over every training box, as one process fits it; rank 0 reports
the images every rank skipped, and a failure on one rank stops them all instead of leaving the others waiting."""

import datetime
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests.tiny_training import tiny_dataset

TINY = dict(small_width=8, anchor_sizes=(16, 32, 64), representation_size=32, min_size=96, max_size=128,
            rpn_pre_nms_train=300, rpn_post_nms_train=100)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: str, out_dir: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                       "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world)})
    import torch.distributed as dist

    from models.detection.detectors import build_detector
    from models.detection.training import TrainConfig, train

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    model = build_detector("faster-rcnn", ["a", "b"], backbone="small", **TINY)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(100 + rank)  # each rank its own images
    images = [torch.rand(3, 96, 112, generator=g)]
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]) + rank * 20, "labels": torch.tensor([1 + rank])}]
    losses = ddp(images, targets)
    sum(losses.values()).backward()
    grad = model.rpn.head.conv.weight.grad.clone()
    opt.step()
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    grads = [torch.zeros_like(grad) for _ in range(world)]
    dist.all_gather(grads, grad)
    torch.save({"equal": all(torch.equal(gathered[0], x) for x in gathered),
                "grads_equal": all(torch.equal(grads[0], x) for x in grads)}, f"{out_dir}/step{rank}.pt")
    # The real loop: it reuses the process group and destroys it at the end.
    cfg = TrainConfig(data=data, out=f"{out_dir}/ddp.pt", epochs=1, batch_size=1, lr=0.01, min_size=96,
                      max_size=128, device="cpu", warmup_iters=1,
                      model={**{k: v for k, v in TINY.items() if k not in ("min_size", "max_size")},
                             "roi_head.calibration": "prototype"})
    steps = []
    result = train(cfg, callbacks=steps.append)
    calibration = [e.total_steps for e in steps if e.kind == "proposals" and e.message == "calibration prototypes"]
    torch.save({"status": result.status, "events": len(steps), "checkpoint": result.checkpoint,
                "calibration_images": max(calibration, default=0)}, f"{out_dir}/train{rank}.pt")


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("ddp_set") / "set", seed=7)


def test_two_cpu_processes_agree_after_a_step(tiny_set, tmp_path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tiny_set), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        step = torch.load(tmp_path / f"step{rank}.pt", weights_only=True)
        assert step["equal"] and step["grads_equal"]
    r0 = torch.load(tmp_path / "train0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "train1.pt", weights_only=True)
    assert r0["status"] == r1["status"] == "completed"
    assert r0["events"] > 0 and r1["events"] == 0  # only rank 0 reports
    from models.detection.checkpoints import load_checkpoint

    payload = load_checkpoint(tmp_path / "ddp.pt")
    assert payload["epoch"] == 1 and not any(k.startswith("module.") for k in payload["state_dict"])
    # 6 training images over 2 ranks, batch 1: 3 steps per rank.
    assert r0["checkpoint"] == str(tmp_path / "ddp.pt")
    # Calibration: both ranks read their half, the sums were added: every box counts, as in one process.
    from models.data.datasets import open_dataset
    from models.data.training_data import DetectionDataset
    from models.detection.score_calibration import PrototypeCalibrator, target_loaders

    state = payload["state_dict"]
    names = payload["class_names"]
    dataset = DetectionDataset(open_dataset(tiny_set), payload["split"]["indices"], names)
    alone = PrototypeCalibrator(len(names))
    counts = alone.fit(target_loaders(dataset.targets))
    assert sum(counts.values()) == sum(int((~t.difficult).sum()) for t in dataset.targets) > 0
    assert r0["calibration_images"] == (len(dataset) + 1) // 2  # rank 0 read its half of the images only
    assert state["calibrator.counts"].tolist() == alone.counts.tolist()
    torch.testing.assert_close(state["calibrator.prototypes"], alone.prototypes, rtol=1e-5, atol=1e-6)


def _calibration_worker(rank: int, world: int, port: int, data: str, out_dir: str) -> None:
    """Prototype calibration's collectives with trouble on the ranks: every rank finds 6 unreadable images
    (rank 0 hears of all of them, in turn), then rank 1 fails outright (every rank stops, none hangs)."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    import torch.distributed as dist

    from models.data.datasets import open_dataset
    from models.data.io import ImageError
    from models.data.training_data import DetectionDataset
    from models.detection import score_calibration
    from models.detection.detectors import build_detector
    from models.detection.score_calibration import enable_calibration
    from models.detection.training_distributed import DistInfo
    from models.detection.training_finish import fit_calibration

    torch.set_num_threads(1)
    # A rank left waiting in a collective fails within a minute instead of gloo's default half hour.
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    model = build_detector("faster-rcnn", ["a", "b"], backbone="small", **TINY)
    enable_calibration(model)
    dataset = DetectionDataset(open_dataset(data), list(range(4)), ["a", "b"])
    info = DistInfo(True, rank, world, rank)
    real_loaders = score_calibration.target_loaders

    def unreadable(message: str):  # noqa: ANN202
        def load():  # noqa: ANN202
            raise ImageError(message)
        return load

    def with_broken(targets):  # noqa: ANN001, ANN202
        return real_loaders(targets) + [unreadable(f"rank {rank} image {i}") for i in range(6)]

    score_calibration.target_loaders = with_broken
    events = []
    fit_calibration(model, dataset, events.append, None, info)
    heard = [e.message for e in events if e.kind == "message"]

    def failing(targets):  # noqa: ANN001, ANN202
        if rank == 1:
            raise MemoryError("rank 1 ran out of memory")
        return real_loaders(targets)

    score_calibration.target_loaders = failing
    try:
        fit_calibration(model, dataset, [].append, None, info)
        raised = ""
    except Exception as exc:  # noqa: BLE001 - what each rank raised is the point
        raised = f"{type(exc).__name__}: {exc}"
    torch.save({"heard": heard, "raised": raised}, f"{out_dir}/calibration{rank}.pt")
    # Both ranks reach the end before the group goes: rank 0 hosts the store, and a rank still tearing down
    # when the other has exited can abort in gloo ("terminate called without an active exception").
    dist.barrier()
    dist.destroy_process_group()


def test_calibration_reports_every_ranks_skipped_images_and_a_failure_stops_every_rank(tiny_set, tmp_path) -> None:
    mp.spawn(_calibration_worker, args=(2, _free_port(), str(tiny_set), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "calibration0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "calibration1.pt", weights_only=True)
    skipped = [m for m in r0["heard"] if m.endswith("; skipped")]
    assert skipped == [f"score calibration: rank {r} image {i}; skipped" for i in range(5) for r in (0, 1)]
    assert "score calibration: 12 images skipped in all (the first 10 shown)" in r0["heard"]
    assert r1["raised"] == "MemoryError: rank 1 ran out of memory"
    assert r0["raised"].startswith("RuntimeError: score calibration failed on another process")

