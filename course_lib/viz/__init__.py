"""See the package docstring of course_lib."""
