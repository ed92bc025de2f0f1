"""Global and object losses: values by hand, matching, stop-gradient, permutation invariance."""

import math

import pytest
import torch
import torch.nn.functional as F

from blockident.errors import ConfigError
from blockident.models.objects import ObjectOutput
from blockident.object_losses import ObjectLosses, hungarian_match, negative_cosine, ntxent


class Identity:
    """A model whose projection heads are the identity."""

    has_slots, architecture = True, "two_branch"

    def project_global(self, g):
        return g

    def project_slots(self, s):
        return s


def out(g, s=None):
    return ObjectOutput(g, s, None, (1, 1))


def test_ctr_is_nt_xent_by_hand():
    torch.manual_seed(0)
    z1, z2, tau = torch.randn(3, 4), torch.randn(3, 4), 0.5
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n, terms = len(z), []
    for i in range(n):
        positive = (i + 3) % n
        logits = [math.exp(float(z[i] @ z[j]) / tau) for j in range(n) if j != i]
        terms.append(-float(z[i] @ z[positive]) / tau + math.log(sum(logits)))
    expected = sum(terms) / n
    assert ntxent(z1, z2, tau).item() == pytest.approx(expected, rel=1e-5)
    total, parts = ObjectLosses({"ctr": 2.0}, tau=tau)(out(z1), out(z2), Identity())
    assert set(parts) == {"ctr"} and total.item() == pytest.approx(2 * expected, rel=1e-5)


def test_hungarian_matching_recovers_a_permutation():
    torch.manual_seed(0)
    s1 = torch.randn(2, 5, 8)
    perms = [torch.tensor([3, 0, 4, 1, 2]), torch.tensor([1, 2, 3, 4, 0])]
    s2 = torch.stack([s1[b, p] for b, p in enumerate(perms)]) + 0.01 * torch.randn(2, 5, 8)
    rows, cols = hungarian_match(s1, s2)
    assert rows.tolist() == [list(range(5))] * 2
    for b, p in enumerate(perms):  # slot i of view 1 sits at position p.argsort()[i] in view 2
        assert cols[b].tolist() == p.argsort().tolist()
    rows, cols = hungarian_match(s1, s2[:, :3])  # fewer slots in view 2: K = 3 pairs
    assert rows.shape == cols.shape == (2, 3)


def test_negative_cosine_stops_the_gradient_of_its_target():
    p, z = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    negative_cosine(p, z).backward()
    assert p.grad.abs().sum() > 0 and z.grad is None


def test_sim_img_gradient_flows_only_through_the_anchor_sides():
    torch.manual_seed(0)
    s1 = torch.randn(2, 3, 4, requires_grad=True)
    s2 = torch.randn(2, 3, 4, requires_grad=True)
    g = torch.randn(2, 4)
    _, parts = ObjectLosses({"sim_img": 1.0})(out(g, s1), out(g, s2), Identity())
    parts["sim_img"].backward()
    # expected: each side's gradient is that of -0.5 cos(own, other matched slot) alone
    _, cols = hungarian_match(s1, s2)
    a = s1.detach().clone().requires_grad_(True)
    other = torch.stack([s2[b, cols[b]] for b in range(2)]).detach()
    (-0.5 * F.cosine_similarity(a, other, dim=-1).mean()).backward()
    assert torch.allclose(s1.grad, a.grad, atol=1e-6)


@pytest.mark.parametrize("term", ["ctr_all", "ctr_img", "sim_img"])
def test_object_terms_do_not_depend_on_slot_order(term):
    torch.manual_seed(1)
    g = torch.randn(3, 4)
    s1, s2 = torch.randn(3, 4, 6), torch.randn(3, 4, 6)
    loss = ObjectLosses({term: 1.0}, tau=0.2)
    value, parts = loss(out(g, s1), out(g, s2), Identity())
    assert set(parts) == {term} and torch.isfinite(value)
    perm = torch.stack([torch.randperm(4) for _ in range(3)])
    s2p = torch.stack([s2[b, perm[b]] for b in range(3)])
    s1p = torch.stack([s1[b, perm[(b + 1) % 3]] for b in range(3)])
    assert loss(out(g, s1), out(g, s2p), Identity())[0].item() == pytest.approx(value.item(),
                                                                                 abs=1e-5)
    assert loss(out(g, s1p), out(g, s2p), Identity())[0].item() == pytest.approx(value.item(),
                                                                                  abs=1e-5)


def test_ctr_img_and_ctr_all_by_hand_on_one_pair_of_images():
    # identical, orthogonal slots: ctr_img sees only its own image's slots, ctr_all sees more
    s = torch.eye(3).unsqueeze(0)  # (1, 3, 3)
    g, tau = torch.randn(1, 3), 1.0
    terms = ObjectLosses({"ctr_img": 1.0, "ctr_all": 1.0}, tau=tau)(out(g, s), out(g, s),
                                                                     Identity())[1]
    expected = -1 + math.log(math.e + 2)  # one positive (cos 1), two negatives (cos 0)
    assert terms["ctr_img"].item() == pytest.approx(expected, rel=1e-5)
    assert terms["ctr_all"].item() == pytest.approx(expected, rel=1e-5)  # B = 1: the same
    s2 = torch.cat([s, s])  # two images: ctr_all also sees the other image's three slots
    terms = ObjectLosses({"ctr_img": 1.0, "ctr_all": 1.0}, tau=tau)(
        out(torch.cat([g, g]), s2), out(torch.cat([g, g]), s2), Identity())[1]
    assert terms["ctr_img"].item() == pytest.approx(expected, rel=1e-5)
    assert terms["ctr_all"].item() == pytest.approx(-1 + math.log(2 * math.e + 4), rel=1e-5)


def test_weights_select_and_scale_terms_and_bad_weights_are_config_errors():
    torch.manual_seed(0)
    g1, g2 = torch.randn(4, 5), torch.randn(4, 5)
    s1, s2 = torch.randn(4, 3, 5), torch.randn(4, 3, 5)
    full = ObjectLosses({"ctr": 1, "sim": 1, "ctr_all": 1, "ctr_img": 1, "sim_img": 1})
    total, parts = full(out(g1, s1), out(g2, s2), Identity())
    assert set(parts) == {"ctr", "sim", "ctr_all", "ctr_img", "sim_img"}
    assert total.item() == pytest.approx(sum(v.item() for v in parts.values()), rel=1e-5)
    half = ObjectLosses({"ctr": 0, "ctr_img": 0.5})(out(g1, s1), out(g2, s2), Identity())[1]
    assert set(half) == {"ctr_img"}
    assert half["ctr_img"].item() == pytest.approx(0.5 * parts["ctr_img"].item(), rel=1e-5)
    with pytest.raises(ConfigError, match="unknown loss terms"):
        ObjectLosses({"ctr_everything": 1})
    with pytest.raises(ConfigError, match="every loss weight is 0"):
        ObjectLosses({"ctr": 0})


def test_object_terms_need_slots():
    class GlobalOnly(Identity):
        has_slots, architecture = False, "global"

    loss = ObjectLosses({"ctr": 1, "ctr_img": 1})
    with pytest.raises(ConfigError, match="architecture='global'"):
        loss.check(GlobalOnly())
    with pytest.raises(ConfigError, match="need slots"):
        loss(out(torch.randn(2, 3)), out(torch.randn(2, 3)), GlobalOnly())
    ObjectLosses({"ctr": 1}).check(GlobalOnly())  # global terms alone are fine


def test_predictors_take_part_in_sim_terms():
    loss = ObjectLosses({"sim": 1, "sim_img": 1}, predictor_dim=4)
    g1, g2 = torch.randn(3, 4), torch.randn(3, 4)
    s1, s2 = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    total, _ = loss(out(g1, s1), out(g2, s2), Identity())
    total.backward()
    for predictor in (loss.global_predictor, loss.slot_predictor):
        assert all(p.grad is not None for p in predictor.parameters())
