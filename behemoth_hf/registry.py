"""Make the literal `datasets.load_dataset("behemoth", "default")` work offline.

datasets >= 4 runs no loading scripts, so the builder is registered as a *packaged module* (like
`parquet` or `json`). That registry, `_PACKAGED_DATASETS_MODULES`, is private API: this module is the
only place that touches it, and tests/test_builder.py guards it against a datasets upgrade.
A packaged module normally reads data files and would scan the current directory for them; the
Behemoth builder reads none, so the lookup is pointed at the builder's own source file instead.
"""

from __future__ import annotations


def register_builder() -> None:
    """Register `behemoth` with `datasets.load_dataset` (idempotent)."""
    # Imported here, not above: the builder module registers itself (importing this one), and importing `datasets`
    # sets off the package's import hook, which calls this function.
    import datasets.load
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    from behemoth_hf import builder

    _PACKAGED_DATASETS_MODULES[builder.DATASET_NAME] = (builder.__name__, builder.source_hash())
    factory = datasets.load.PackagedDatasetModuleFactory
    if getattr(factory.get_module, "_behemoth_patched", False):
        return
    original_get_module = factory.get_module

    def get_module(self):
        if self.name == builder.DATASET_NAME and self.data_files is None and self.data_dir is None:
            self.data_files = builder.__file__
        return original_get_module(self)

    get_module._behemoth_patched = True
    factory.get_module = get_module
