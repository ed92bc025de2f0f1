"""``blockident experiments``: list the experiment configs with their descriptions."""

from __future__ import annotations

from importlib.resources import files

from omegaconf import OmegaConf


def available() -> dict[str, str]:
    """Experiment name (the ``experiment=`` choice) -> one-line description."""
    folder = files("blockident") / "conf" / "experiment"
    out = {}
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.name.endswith(".yaml"):
            info = OmegaConf.create(path.read_text()).get("info", {})
            out[path.name.removesuffix(".yaml")] = info.get("description", "")
    return out


def main(argv: list[str]) -> int:
    for name, description in available().items():
        print(f"{name:<18} {description}")
    print("\nrun one with: blockident run experiment=NAME [key=value ...]")
    return 0
