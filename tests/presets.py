"""A tiny study preset shared by the study, reference and report tests."""


def write_preset(tmp_path, name="tiny", space="small", extra="", reference="", data=""):
    """A digits study that runs in seconds: 2-image-per-class set, 2 training and 2 reference epochs.

    ``extra`` goes into [study], ``data`` into [data], ``reference`` into [reference]."""
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""
[data]
dataset = "digits"
{data}
[study]
name = "{name}"
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

[training]
epochs = 2

[reference]
epochs = 2
{reference}
""")
    return path
