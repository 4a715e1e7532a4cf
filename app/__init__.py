"""The Qt application. Importing this package does not import Qt, so headless commands stay headless."""
