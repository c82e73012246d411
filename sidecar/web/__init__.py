"""The HTTP edge: parse requests into domain values, call one service method, render the result."""
