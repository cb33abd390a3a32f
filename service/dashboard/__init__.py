"""The dashboard at `/dashboard`."""
