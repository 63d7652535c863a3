"""The build kernel's setup before a notebook runs: strict deprecations, described pictures."""

from __future__ import annotations

import importlib.abc
import importlib.util
import io
import logging
import struct
import sys
import zlib
from collections.abc import Callable
from types import ModuleType

DESCRIPTION_KEY = "Description"  # the PNG text field that carries a picture's alt text


class DeprecationLogged(FutureWarning):
    """MLflow logged (instead of warning) that a call is deprecated."""


def fail_on_deprecation_logs() -> None:
    """Raise where an mlflow.* logger writes (at WARNING or above) that something is deprecated,
    as the build's warnings filter does for deprecation warnings."""
    make_record = logging.getLogRecordFactory()

    def strict_record(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if (record.name.partition(".")[0] == "mlflow" and record.levelno >= logging.WARNING
                and "deprecated" in record.getMessage().lower()):
            raise DeprecationLogged(f"{record.name}: {record.getMessage()}")
        return record

    logging.setLogRecordFactory(strict_record)


def describe_figure(figure) -> str:
    """An alt text for a Matplotlib figure, from its titles, axis labels, legend and box texts."""
    parts = [figure.get_suptitle()] if figure.get_suptitle() else []
    for axes in figure.axes:
        title = axes.get_title() or axes.get_title("left")
        if not axes.axison:  # a diagram: its title and the text in its boxes and arrows
            texts = [t.get_text().replace("\n", " ") for t in axes.texts if t.get_text()]
            parts.append(f"Diagram: {title}. " + "; ".join(texts) if title else "; ".join(texts))
            continue
        kind = "Bar chart" if axes.patches and not axes.lines else "Chart"
        parts.append(f"{kind}: {title}" if title else kind)
        labels = [f"{name} axis: {label}" for name, label in
                  (("x", axes.get_xlabel()), ("y", axes.get_ylabel())) if label]
        legend = axes.get_legend()
        if legend:
            labels.append("series: " + ", ".join(t.get_text() for t in legend.get_texts()))
        parts.extend(labels)
    return ". ".join(p.rstrip(".") for p in parts if p) + "."


class _AfterImport(importlib.abc.MetaPathFinder):
    """Call then(module) once the module called name is imported (not before: imports cost)."""

    def __init__(self, name: str, then: Callable[[ModuleType], None]) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        load = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            load(module)
            self.then(module)

        spec.loader.exec_module = exec_module
        return spec


def describe_figures() -> None:
    """Write describe_figure's text into every PNG Matplotlib renders (shown or saved)."""
    if "matplotlib.backend_bases" in sys.modules:
        _describe_pngs(sys.modules["matplotlib.backend_bases"])
    else:
        sys.meta_path.insert(0, _AfterImport("matplotlib.backend_bases", _describe_pngs))


def _describe_pngs(backend_bases: ModuleType) -> None:
    """Make FigureCanvasBase.print_figure add the figure's description to a PNG."""
    FigureCanvasBase = backend_bases.FigureCanvasBase
    original = FigureCanvasBase.print_figure

    def print_figure(self, filename, *args, **kwargs):
        name = filename if isinstance(filename, str) else getattr(filename, "name", "")
        fmt = kwargs.get("format") or str(name).rpartition(".")[2] or "png"
        if fmt.lower() == "png":
            kwargs["metadata"] = {DESCRIPTION_KEY: describe_figure(self.figure),
                                  **(kwargs.get("metadata") or {})}
        return original(self, filename, *args, **kwargs)

    FigureCanvasBase.print_figure = print_figure


def with_description(png: bytes, text: str) -> bytes:
    """The same PNG with text as its description: an iTXt chunk (UTF-8) after the header.

    Inserted, not re-encoded: encoding a screenshot again would cost most of a second.
    """
    header_end = 8 + 25  # the PNG signature, then the IHDR chunk (length, type, 13 bytes, CRC)
    if png[12:16] != b"IHDR":
        raise ValueError("not a PNG: its first chunk is not IHDR")
    data = DESCRIPTION_KEY.encode() + b"\0\0\0\0\0" + text.encode()  # no compression or language
    chunk = b"iTXt" + data
    packed = struct.pack(">I", len(data)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return png[:header_end] + packed + png[header_end:]


def description(png: bytes) -> str | None:
    """The description a PNG carries, or None."""
    from PIL import Image

    return Image.open(io.BytesIO(png)).text.get(DESCRIPTION_KEY)
