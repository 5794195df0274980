"""A tiny study preset shared by the study, reference and report tests."""


def write_preset(tmp_path, name="tiny", space="small", extra="", reference=""):
    """A digits study that runs in seconds: 2-image-per-class set, 2 proxy and 2 reference epochs."""
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""
[study]
name = "{name}"
dataset = "digits"
search_space = "{space}"
sampler = "random"
n_trials = 6
out_dir = "{tmp_path / "out"}"
{extra}
[condense]
ipc = 2
iterations = 3
batch_real = 16
embed_arch = "d1-w8-relu-instancenorm-avgpool"

[proxy]
epochs = 2

[reference]
epochs = 2
{reference}
""")
    return path
