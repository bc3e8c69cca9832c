"""saline: one model of an OpenStack deployment; Salt formulas for hosts and images."""

__version__ = "0.1.0"
