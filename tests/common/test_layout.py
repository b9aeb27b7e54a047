"""Packaging guard rails: one namespace, and pymilter's `milter` is never shadowed."""

import importlib


def test_pymilter_module_is_not_shadowed():
    milter = importlib.import_module("milter")
    assert milter.__file__.endswith(".so"), milter.__file__


def test_services_live_under_one_namespace():
    for name in ("milter", "authsocket", "expire", "dnszone"):
        module = importlib.import_module(f"chatmail_services.{name}")
        assert module.__name__ == f"chatmail_services.{name}"
