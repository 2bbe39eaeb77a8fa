"""The C part of the rule matcher (watcher/rules/_native.c). Optional: where it cannot be
built (no C compiler), the pure-Python matcher does all the matching, with the same answers.
Everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "watcher.rules._native",
            ["watcher/rules/_native.c"],
            optional=True,
            # Python's own optimisation flags (-O3); warnings on, as the code is clean of them
            extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
