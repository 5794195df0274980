import pytest
import torch

from nas_proxy import ArchSpec, NasProxyError, load_search_space
from nas_proxy.method import build_convnet, count_flops, count_params
from nas_proxy.space import DEFAULT_ARCH
from nas_proxy.space._space import ACTIVATIONS, NORMS, POOLINGS


def test_id_round_trips_for_every_arch_of_the_720_space():
    space = load_search_space("nas720")
    archs = space.archs()
    assert len(archs) == len(space) == 720 == len({a.id for a in archs})
    for arch in archs:
        assert ArchSpec.parse(arch.id) == arch and str(arch) == arch.id
    assert {a.activation for a in archs} == set(ACTIVATIONS)
    assert {a.norm for a in archs} == set(NORMS) and {a.pooling for a in archs} == set(POOLINGS)


def test_default_arch_id():
    assert DEFAULT_ARCH.id == "d3-w128-relu-instancenorm-avgpool"


@pytest.mark.parametrize(
    "bad",
    [
        "d3-w128-relu-instancenorm",
        "d0-w128-relu-none-none",
        "d3-w128-tanh-none-none",
        "d3-w128-relu-weirdnorm-none",
        "d3-w128-relu-none-maxpooling",
        "resnet18",
    ],
)
def test_bad_ids_raise_clear_errors(bad):
    with pytest.raises(NasProxyError):
        ArchSpec.parse(bad)


def test_all_720_build_and_run_on_28_and_32_px():
    space = load_search_space("nas720")
    generator = torch.Generator().manual_seed(0)
    params = []
    for arch in space.archs():
        for channels, size in ((1, 28), (3, 32)):
            net = build_convnet(arch, channels, 10, size, generator=generator)
            with torch.no_grad():
                out = net(torch.randn(1, channels, size, size, generator=generator))
            assert out.shape == (1, 10) and torch.isfinite(out).all(), arch.id
            if channels == 3:
                params.append(count_params(net))
    assert min(params) == 24_522 and max(params) == 6_496_010  # the paper's 24.5K to 6.5M on CIFAR-10


def test_embedding_is_2048_for_the_default_net():
    net = build_convnet(DEFAULT_ARCH, 1, 10, 28, generator=torch.Generator().manual_seed(0))
    assert net.embed(torch.zeros(3, 1, 28, 28)).shape == (3, 2048)


def test_same_generator_seed_same_weights():
    arch = ArchSpec.parse("d2-w32-relu-batchnorm-maxpool")
    a = build_convnet(arch, 1, 10, 28, generator=torch.Generator().manual_seed(3))
    b = build_convnet(arch, 1, 10, 28, generator=torch.Generator().manual_seed(3))
    c = build_convnet(arch, 1, 10, 28, generator=torch.Generator().manual_seed(4))
    for (_, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)


def test_flops_match_a_hand_count():
    # d1-w32 on 28 px (padded to 32): conv 32*32*1*32*9 MACs, then 16*16*32 features -> 10 classes.
    arch = ArchSpec.parse("d1-w32-relu-none-avgpool")
    assert count_flops(arch, 1, 10, 28) == 2 * (32 * 32 * 32 * 9 + 16 * 16 * 32 * 10)


def test_too_much_pooling_for_small_images_is_an_error():
    with pytest.raises(NasProxyError, match="below 1 px"):
        build_convnet(ArchSpec.parse("d4-w32-relu-none-avgpool"), 1, 10, 8, generator=torch.Generator())


def test_small_space_is_a_subset_of_nas720():
    big, small = load_search_space("nas720"), load_search_space("small")
    assert 0 < len(small) < len(big) and all(arch in big for arch in small.archs())


def test_sample_is_seeded_and_distinct():
    space = load_search_space("nas720")
    a, b = space.sample(40, seed=1), space.sample(40, seed=1)
    assert a == b and len(set(a)) == 40 and a != space.sample(40, seed=2)


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "name='x'\nbogus=1\n[choices]\ndepth=[1]\nwidth=[8]\nactivation=['relu']\nnorm=['none']\npooling=['none']",
            "unknown key 'bogus'",
        ),
        ("[choices]\ndepth=[]\nwidth=[8]\nactivation=['relu']\nnorm=['none']\npooling=['none']", "choices.depth"),
        ("[choices]\ndepth=['3']\nwidth=[8]\nactivation=['relu']\nnorm=['none']\npooling=['none']", "expected int"),
        (
            "[choices]\ndepth=[1]\nwidth=[8]\nactivation=['tanh']\nnorm=['none']\npooling=['none']",
            "unknown value 'tanh'",
        ),
        ("[choices]\ndepth=[1]\nwidth=[8]\nactivation=['relu']\nnorm=['none']", "missing key choices.pooling"),
        ("[choices\n", "not valid TOML"),
        (
            "[choices]\ndepth=[1, 100000000000000000000]\nwidth=[8]\nactivation=['relu']\nnorm=['none']\n"
            "pooling=['none']",
            r"choices.depth: every depth must be at most 16 \(4 times the deepest network of the paper's space\), "
            "got 100000000000000000000$",
        ),
        (
            "[choices]\ndepth=[1]\nwidth=[8, 99999999]\nactivation=['relu']\nnorm=['none']\npooling=['none']",
            r"choices.width: every width must be at most 4096 \(16 times the widest network of the paper's space\)",
        ),
    ],
)
def test_bad_search_space_files_name_the_key(tmp_path, body, message):
    path = tmp_path / "space.toml"
    path.write_text(body)
    before = path.read_bytes()
    with pytest.raises(NasProxyError, match=message):
        load_search_space(path)
    assert path.read_bytes() == before


def test_missing_search_space_names_the_path(tmp_path):
    with pytest.raises(NasProxyError, match="not found"):
        load_search_space(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "arch_id, message",
    [
        ("d1-w99999999-relu-none-none", r"^width must be at most 4096 \(16 times the widest .*\), got 99999999$"),
        ("d17-w8-relu-none-none", r"^depth must be at most 16 \(4 times the deepest network of the paper's space\)"),
        ("d1-w0-relu-none-none", r"^width must be positive, got 0$"),
        # more digits than int() converts: refused as an id, and the id is not echoed whole
        ("d" + "9" * 5000 + "-w8-relu-none-none", r"^cannot parse architecture id 'd9{50,}\.\.\.; expected d<depth>"),
    ],
)
def test_an_architecture_past_the_limits_is_refused_naming_the_limit(arch_id, message):
    with pytest.raises(NasProxyError, match=message) as error:
        ArchSpec.parse(arch_id)
    assert len(str(error.value)) < 200
    assert ArchSpec.parse("d16-w4096-relu-none-none").width == 4096  # the limits themselves are allowed
