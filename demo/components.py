"""Input components that hand the raw value to the handler, so that demo.validate's message names the parameter.

Gradio's own checks say only "Value -5 is less than minimum value -1." or "Could not preprocess input component at
index 0"; every handler validates its inputs anyway. They are subclasses (not patched instances) because Gradio
re-creates a component from its class when an event updates it (a new maximum, say). `is_template` makes the browser
render them as the parent component. Gradio writes a type stub (components.pyi, git-ignored) beside this file.
"""
from __future__ import annotations

import gradio as gr


def raw_preprocess(self, payload):
    """Every class below: the browser's value, unchanged, for demo.validate to check."""
    return payload


class Slider(gr.Slider):
    """gr.Slider without Gradio's range check."""

    is_template, preprocess = True, raw_preprocess


class Number(gr.Number):
    """gr.Number without Gradio's conversion."""

    is_template, preprocess = True, raw_preprocess


class Radio(gr.Radio):
    """gr.Radio without Gradio's choice check."""

    is_template, preprocess = True, raw_preprocess


class Dropdown(gr.Dropdown):
    """gr.Dropdown without Gradio's choice check."""

    is_template, preprocess = True, raw_preprocess


class CheckboxGroup(gr.CheckboxGroup):
    """gr.CheckboxGroup without Gradio's choice check."""

    is_template, preprocess = True, raw_preprocess
