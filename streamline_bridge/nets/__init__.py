"""Network definitions the project writes itself (used when the user gives no ``--model``)."""
