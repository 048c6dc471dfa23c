"""The course machinery: exercise notebooks built from solutions, check cells, grading, a runner."""
