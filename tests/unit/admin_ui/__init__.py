"""Unit tests of the web console (admin/ui)."""
