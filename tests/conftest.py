from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_dir() -> Path:
    """`../shared` beside the checkout (real GSM8K data, the stories260K checkpoint); skips when absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: it holds the GSM8K data and the stories260K checkpoint")
    return SHARED


@pytest.fixture
def installed_distribution(tmp_path, monkeypatch):
    """``installed_distribution(dist, module, source, entry_name=None)`` puts a distribution with a `trl_grpo_plus`
    entry point on ``sys.path``, as pip would install it, so discovery goes through real entry-point metadata."""

    def install(dist: str, module: str, source: str, entry_name: str | None = None) -> Path:
        site = tmp_path / f"site-{dist}"
        info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[trl_grpo_plus]\n{entry_name or module} = {module}\n")
        (site / f"{module}.py").write_text(source)
        monkeypatch.syspath_prepend(str(site))
        return site

    return install
