"""The README's code examples, loaded as plugin modules, so tests prove that what the README shows works."""

import re
import types
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def readme_plugin(marker: str, module_name: str) -> types.ModuleType:
    """The one ```python block of the README containing `marker`, executed as module `module_name`."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    [source] = [block for block in blocks if marker in block]
    plugin = types.ModuleType(module_name)
    exec(source, plugin.__dict__)
    return plugin
