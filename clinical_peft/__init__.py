"""clinical-peft: parameter-efficient adaptation of LLaMA-family models to clinical text."""

from clinical_peft.moved import install as _install_moved_modules

_install_moved_modules()  # old import paths that YAMLs and saved configs name keep working
