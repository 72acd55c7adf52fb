"""Pure domain logic: frames in, frames out. No Dagster import and no I/O anywhere below here."""
