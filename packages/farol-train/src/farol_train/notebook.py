"""The notebook's config wizard: the same profiles, schema and file as `farol-train configure`.

It writes the config from the values it is given at once (so an unattended run goes on), and
with ipywidgets shows a form whose Save button writes the file again with the user's choices.
"""

from pathlib import Path

import yaml
from farol_core.errors import FarolError

from farol_train.preflight import apply_profile, describe, profiles
from farol_train.quantize import quantize
from farol_train.run_config import resolve
from farol_train.wizard import write_config as save_config

FIELDS = ("batch_size", "grad_accumulation_steps", "max_seq_length", "learning_rate", "iters")


def base_model(model: str | Path, tiny: str | Path | None = None, texts=()) -> Path:
    """`model`, checked. With `tiny`, the embedded tiny model is built there and quantized
    into `model` where missing, as `invoke demo` does; `texts` (e.g. farol_data.texts of the
    sample) trains its tokenizer."""
    from farol_core.model import check_model_dir
    from farol_core.tiny import create_tiny_model

    model = Path(model)
    if tiny is not None and not (Path(tiny) / "config.json").is_file():
        create_tiny_model(tiny, texts, force=Path(tiny).exists())
    if tiny is not None and not (model / "config.json").is_file():
        quantize(tiny, model, force=model.exists())
    return check_model_dir(model)


def recommendations(cfg: dict) -> dict[str, str]:
    """SAFE / BALANCED / PERFORMANCE for this model and machine, described in one line each."""
    return {name: describe(p) if p else "does not fit in memory"
            for name, p in profiles(resolve(cfg)).items()}


def write_config(cfg: dict, out: str | Path, profile: str | None = None,
                 **training) -> Path:
    """Validate `cfg` with a profile's settings (SAFE, BALANCED, PERFORMANCE or None) and
    `training` values on top, and write it as YAML the way `farol-train configure` does."""
    cfg = resolve(cfg)
    if profile:
        chosen = profiles(cfg).get(profile)
        if chosen is None:
            raise FarolError(f"profile {profile} does not fit in memory or is unknown",
                             hint="pick SAFE, BALANCED or PERFORMANCE, or profile=None")
        cfg = apply_profile(cfg, chosen)
    cfg["training"].update({k: v for k, v in training.items() if v is not None})
    cfg = resolve(cfg)  # the schema checks the user's values too
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out)
    return out


def wizard(cfg: dict, out: str | Path, profile: str | None = "BALANCED",
           interactive: bool = True, **training) -> Path:
    """Write the config from these values now; with ipywidgets and `interactive`, also show
    the form (profile buttons and fields) that rewrites it on Save."""
    path = write_config(cfg, out, profile, **training)
    if interactive:
        try:
            form = config_form(cfg, path, profile, yaml.safe_load(path.read_text())["training"])
        except ImportError:
            print("ipywidgets is not installed: the config uses the parameter cell's values")
        else:
            from IPython.display import display

            display(form)
    return path


def config_form(cfg: dict, path: Path, profile: str | None, current: dict):
    """The wizard's ipywidgets form: profile buttons, the FIELDS at their `current` values,
    and Save, which validates and rewrites `path` (or says why it did not)."""
    import ipywidgets as w

    buttons = w.ToggleButtons(options=["SAFE", "BALANCED", "PERFORMANCE", "custom"],
                              value=profile or "custom", description="profile")
    fields = {k: (w.FloatText if k == "learning_rate" else w.IntText)(value=current[k],
                                                                         description=k)
              for k in FIELDS}
    save, result = w.Button(description="Save", button_style="primary"), w.Output()

    def on_save(_):
        result.clear_output()
        with result:
            try:
                chosen = None if buttons.value == "custom" else buttons.value
                # a profile sets the memory settings; the fields add rate and length
                values = {k: f.value for k, f in fields.items()
                          if chosen is None or k in ("learning_rate", "iters")}
                print(f"wrote {write_config(cfg, path, chosen, **values)}")
            except FarolError as e:
                print(f"not saved: {e.message}" + (f" ({e.hint})" if e.hint else ""))
    save.on_click(on_save)
    return w.VBox([buttons, *fields.values(), save, result])
