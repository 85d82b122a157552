"""The UGEM test suite: unit tests mirror the packages, integration tests name the scenario."""
