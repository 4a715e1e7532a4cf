"""Licence texts of third-party files the program uses (package data)."""
