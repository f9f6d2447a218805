"""koekje's demo site."""
