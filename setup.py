"""Build hook for the optional native training kernel.

Everything else about the package lives in pyproject.toml. The kernel is a
PyTorch C++ extension compiled at install time; when no compiler is available
the install still succeeds and the trainer falls back to its pure-PyTorch path.
"""

import logging
import os

from setuptools import setup

logger = logging.getLogger(__name__)


def native_extensions() -> tuple[list, dict]:
    if os.environ.get("WORDVEC_NO_NATIVE") == "1":
        return [], {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        logger.warning("torch is not importable at build time; no native kernel")
        return [], {}
    # "native" tunes for the build machine; images built for other machines set
    # WORDVEC_NATIVE_ARCH to a portable level such as x86-64-v2.
    arch = os.environ.get("WORDVEC_NATIVE_ARCH", "native")
    extension = CppExtension(
        name="training._native",
        sources=["training/native/word2vec_kernel.cpp"],
        extra_compile_args=[
            "-O3",
            f"-march={arch}",
            "-funroll-loops",
            "-fvisibility=hidden",
        ],
    )
    # The kernel uses only the pybind11 headers that ship with torch, so it
    # links none of the libtorch libraries CppExtension adds: importing it
    # then does not load torch (about 200 MB resident).
    extension.libraries = []

    class OptionalBuildExtension(BuildExtension):
        def run(self) -> None:
            try:
                super().run()
            except Exception:  # any build failure means "no kernel"
                logger.warning("native kernel failed to build; using PyTorch path")

    return [extension], {"build_ext": OptionalBuildExtension}


ext_modules, cmdclass = native_extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
