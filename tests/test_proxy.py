import pytest
import torch

from nas_proxy import ArchSpec, NasProxyError, ProxyConfig, train_proxy

ARCH = ArchSpec.parse("d2-w16-relu-instancenorm-avgpool")


def test_same_seed_same_score_and_different_seed_differs(digits):
    train = digits.sample_per_class(5, seed=0)
    a = train_proxy(ARCH, train, digits, ProxyConfig(epochs=20, seed=1), test=True)
    b = train_proxy(ARCH, train, digits, ProxyConfig(epochs=20, seed=1), test=True)
    c = train_proxy(ARCH, train, digits, ProxyConfig(epochs=20, seed=2))
    assert (a.val_acc, a.test_acc) == (b.val_acc, b.test_acc)
    assert c.test_acc is None and (a.val_acc != c.val_acc or a.params == c.params)


def test_training_learns_and_reports_cost(digits):
    result = train_proxy(ARCH, digits.sample_per_class(20, seed=0), digits, ProxyConfig(epochs=40), test=True)
    assert result.val_acc > 0.5 and result.test_acc > 0.5  # chance is 0.1
    assert result.params == sum(p.numel() for p in
                                __import__("nas_proxy").build_convnet(ARCH, 1, 10, 16, generator=torch.Generator()).parameters())
    assert result.flops > 0 and result.seconds > 0 and result.train_size == 200 and result.epochs == 40


def test_untrained_network_is_near_chance_so_training_matters(digits):
    trained = train_proxy(ARCH, digits.sample_per_class(20, seed=0), digits, ProxyConfig(epochs=40))
    barely = train_proxy(ARCH, digits.sample_per_class(20, seed=0), digits, ProxyConfig(epochs=1))
    assert trained.val_acc > barely.val_acc + 0.2


def test_learning_rate_decays_in_place_keeping_momentum(digits, monkeypatch):
    seen = []
    real_step = torch.optim.SGD.step

    def step(self, *args, **kwargs):
        seen.append((self.param_groups[0]["lr"], bool(self.state)))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    train_proxy(ARCH, digits.sample_per_class(2, seed=0), digits, ProxyConfig(epochs=4, lr=0.1))
    assert [lr for lr, _ in seen] == pytest.approx([0.1, 0.1, 0.01, 0.01])
    assert seen[2][1]  # the momentum buffers survive the decay


def test_sample_per_class_is_balanced_seeded_and_bounded(digits):
    a, b = digits.sample_per_class(7, seed=3), digits.sample_per_class(7, seed=3)
    assert torch.equal(a.x, b.x) and torch.bincount(a.y).tolist() == [7] * 10
    assert not torch.equal(a.x, digits.sample_per_class(7, seed=4).x)
    with pytest.raises(NasProxyError, match="images per class"):
        digits.sample_per_class(100_000)


def test_config_validation():
    with pytest.raises(NasProxyError, match="epochs"):
        ProxyConfig(epochs=0)
    with pytest.raises(NasProxyError, match="unknown key 'epoch'"):
        ProxyConfig.from_dict({"epoch": 3})
    assert ProxyConfig.from_dict({"epochs": 3, "lr": 1}).lr == 1.0
