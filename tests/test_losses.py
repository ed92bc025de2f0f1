import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from blockident.losses import (
    InfoNCE,
    LpInfoNCE,
    _squared_distance_logsumexp,
    _SquaredDistanceLogSumExp,
    infonce,
    lp_infonce,
    pairwise_similarity,
)

# the two implementations of log sum_j exp(-||a_i - b_j||^2 / tau): blocked (CPU), whole (GPU)
SQUARED_LSE = pytest.mark.parametrize(
    "fn", [_SquaredDistanceLogSumExp.apply, _squared_distance_logsumexp], ids=["blocked", "whole"])


def test_infonce_matches_explicit_formula():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / 0.5
    log_p12 = logits.log_softmax(dim=1).diag()
    log_p21 = logits.T.log_softmax(dim=1).diag()
    expected = -0.5 * (log_p12.mean() + log_p21.mean())
    assert torch.allclose(infonce(z1, z2, tau=0.5), expected, atol=1e-6)


def test_within_view_infonce_is_nt_xent():
    """2N-way softmax: every other embedding of both views is a candidate, never the anchor."""
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / 0.3).fill_diagonal_(float("-inf"))
    partner = torch.cat([torch.arange(6, 12), torch.arange(6)])
    expected = F.cross_entropy(logits, partner)
    assert torch.allclose(infonce(z1, z2, tau=0.3, within_view=True), expected, atol=1e-6)


def test_distance_similarities_are_minus_the_distance():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 4, generator=g), torch.randn(7, 4, generator=g)
    expected = -((a[:, None] - b[None]) ** 2).sum(-1)
    assert torch.allclose(pairwise_similarity(a, b, "neg_l2sq"), expected, atol=1e-5)
    l1 = -(a[:, None] - b[None]).abs().sum(-1)
    assert torch.allclose(pairwise_similarity(a, b, "neg_l1"), l1, atol=1e-5)
    with pytest.raises(ValueError, match="unknown similarity"):
        pairwise_similarity(a, b, "dot")


def test_infonce_prefers_aligned_pairs():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(32, 4, generator=g)
    noise = torch.randn(32, 4, generator=g)
    assert infonce(z, z, sim="neg_l2sq") < infonce(z, noise, sim="neg_l2sq")


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_lp_infonce_matches_naive_broadcast(p):
    g = torch.Generator().manual_seed(3)
    z1, z2, n1, n2 = (torch.randn(6, 3, generator=g) for _ in range(4))

    def naive(a, pos, neg):
        d_pos = (a - pos).abs().pow(p).sum(1)
        d_neg = (a[:, None] - neg[None]).abs().pow(p).sum(-1)
        logits = -torch.cat([d_pos[:, None], d_neg], 1)
        return (d_pos + torch.logsumexp(logits, 1)).mean()

    expected = 0.5 * (naive(z1, z2, n1) + naive(z2, z1, n2))
    assert torch.allclose(lp_infonce(z1, z2, n1, n2, p=p), expected, atol=1e-5)
    assert torch.allclose(LpInfoNCE(p=p)(z1, z2, n1, n2), expected, atol=1e-5)


@SQUARED_LSE
def test_squared_distance_logsumexp_gradients(fn):
    g = torch.Generator().manual_seed(5)
    a = torch.randn(600, 3, generator=g, dtype=torch.float64, requires_grad=True)  # 3 blocks
    b = torch.randn(40, 3, generator=g, dtype=torch.float64, requires_grad=True)
    sq_dist = ((a[:, None] - b[None]) ** 2).sum(-1)
    assert torch.allclose(fn(a, b, 0.7), torch.logsumexp(-sq_dist / 0.7, 1))
    assert torch.autograd.gradcheck(lambda x, y: fn(x, y, 0.7), (a[:300], b))
    # an incoming gradient with negative entries cannot go into the exponent as its logarithm
    signs = torch.where(torch.rand(300, generator=g) < 0.5, -1.0, 1.0).double()
    assert torch.autograd.gradcheck(lambda x, y: fn(x, y, 0.7) * signs, (a[:300], b))


@SQUARED_LSE
def test_squared_distance_logsumexp_of_anchors_far_from_every_candidate(fn):
    """Where every term underflows (here e^-400 and smaller), the value and gradients are
    still those of the max-shifted log-sum-exp."""
    g = torch.Generator().manual_seed(6)
    b = torch.randn(30, 2, generator=g)
    a = torch.cat([torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g) + 20.0])
    a64, b64 = a.double().requires_grad_(), b.double().requires_grad_()
    expected = torch.logsumexp(-((a64[:, None] - b64[None]) ** 2).sum(-1), 1)
    expected.sum().backward()
    a32, b32 = a.clone().requires_grad_(), b.clone().requires_grad_()
    out = fn(a32, b32, 1.0)
    out.sum().backward()
    assert expected[5:].max() < -300
    assert torch.allclose(out.double(), expected, rtol=1e-5)
    for x32, x64 in ((a32, a64), (b32, b64)):
        assert torch.allclose(x32.grad.double(), x64.grad, atol=1e-4 * x64.grad.abs().max())


@SQUARED_LSE
def test_squared_distance_logsumexp_in_float32_matches_float64(fn):
    g = torch.Generator().manual_seed(9)
    a, b = torch.randn(1500, 5, generator=g) * 2, torch.randn(1200, 5, generator=g) * 2
    a64, b64 = a.double().requires_grad_(), b.double().requires_grad_()
    a32, b32 = a.clone().requires_grad_(), b.clone().requires_grad_()
    expected, out = torch.logsumexp(-torch.cdist(a64, b64) ** 2 / 0.5, 1), fn(a32, b32, 0.5)
    weights = torch.rand(1500, generator=g)  # a positive incoming gradient, as in the loss
    (expected * weights.double()).sum().backward()
    (out * weights).sum().backward()
    assert torch.allclose(out.double(), expected, rtol=1e-5, atol=1e-5)
    for x32, x64 in ((a32, a64), (b32, b64)):
        assert torch.allclose(x32.grad.double(), x64.grad, atol=1e-4 * x64.grad.abs().max())


def test_lp_infonce_at_the_paper_batch_matches_the_unblocked_loss_in_float64():
    """The blocked loss in float32 at the benchmark's size against the plain formula in float64:
    value and gradients to float32 accuracy."""
    g = torch.Generator().manual_seed(7)
    zs = [torch.randn(1500, 5, generator=g) * 2 for _ in range(4)]

    def plain(z1, z2, n1, n2):
        def direction(a, pos, neg):
            d_pos = ((a - pos) ** 2).sum(1)
            logits = -torch.cat([d_pos[:, None], torch.cdist(a, neg) ** 2], 1)
            return (d_pos + torch.logsumexp(logits, 1)).mean()
        return 0.5 * (direction(z1, z2, n1) + direction(z2, z1, n2))

    inputs64 = [z.double().requires_grad_() for z in zs]
    inputs32 = [z.clone().requires_grad_() for z in zs]
    expected, value = plain(*inputs64), lp_infonce(*inputs32)
    expected.backward()
    value.backward()
    assert abs(value.item() - expected.item()) < 1e-5 * abs(expected.item())
    for x32, x64 in zip(inputs32, inputs64, strict=True):
        scale = x64.grad.abs().max()
        assert torch.allclose(x32.grad.double(), x64.grad, rtol=1e-4, atol=1e-4 * scale)


def test_lp_infonce_of_bfloat16_encodings_under_autocast_is_computed_in_float32():
    g = torch.Generator().manual_seed(8)
    zs = [(torch.randn(300, 5, generator=g) * 3).bfloat16().requires_grad_() for _ in range(4)]
    expected = lp_infonce(*[z.detach().float() for z in zs])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = lp_infonce(*zs)
    assert value.dtype == torch.float32
    assert torch.allclose(value, expected, rtol=1e-6)
    value.backward()
    assert all(z.grad is not None and z.grad.dtype == torch.bfloat16 for z in zs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, inputs, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    n = len(inputs[0]) // world
    local = [x[rank * n:(rank + 1) * n].clone().requires_grad_(True) for x in inputs]
    losses = {"infonce": InfoNCE(tau=0.5)(*local[:2]),
              "nt_xent": InfoNCE(tau=0.5, within_view=True)(*local[:2]),
              "lp_infonce": LpInfoNCE()(*local)}
    result = {}
    for name, loss in losses.items():
        grads = torch.autograd.grad(loss, local[:4] if name == "lp_infonce" else local[:2])
        result[name] = (loss.detach(), [gr / world for gr in grads])  # DDP averages gradients
    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.barrier()  # tearing gloo down while the peer still talks aborts the process
    torch.distributed.destroy_process_group()
    os._exit(0)  # gloo's threads can still abort the interpreter's teardown (SIGABRT)


def test_two_processes_equal_one_process_on_union_batch(tmp_path):
    """Gathered negatives: mean of per-process losses and the gradients equal the union batch."""
    g = torch.Generator().manual_seed(4)
    inputs = [torch.randn(8, 3, generator=g) for _ in range(4)]
    mp.spawn(_ddp_worker, args=(2, _free_port(), inputs, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    full = [x.clone().requires_grad_(True) for x in inputs]
    for name, loss in {"infonce": InfoNCE(tau=0.5)(*full[:2]),
                       "nt_xent": InfoNCE(tau=0.5, within_view=True)(*full[:2]),
                       "lp_infonce": LpInfoNCE()(*full)}.items():
        grads = torch.autograd.grad(loss, full[:4] if name == "lp_infonce" else full[:2])
        mean_loss = sum(r[name][0] for r in ranks) / 2
        assert torch.allclose(mean_loss, loss.detach(), atol=1e-5), name
        for i, grad in enumerate(grads):
            two = torch.cat([r[name][1][i] for r in ranks])
            assert torch.allclose(two, grad, atol=1e-5), (name, i)
