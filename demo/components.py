"""Inputs that hand the raw value to the handler, so that demo.validate's message names the parameter.

Gradio's own checks say only "Value -5 is less than minimum value -1." or "Could not preprocess input component at
index 0"; every handler validates its inputs anyway. (A subclass would make Gradio write a .pyi stub beside this file
at import time, so the instance's preprocess is replaced instead.)
"""
from __future__ import annotations

import gradio as gr


def _identity(payload):
    return payload


def raw(component: gr.components.Component) -> gr.components.Component:
    """The component, passing its payload to the handler unconverted and unchecked."""
    component.preprocess = _identity
    return component
