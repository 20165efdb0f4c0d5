"""The chaos suite (issue 17): a whole stack in real processes, one host each, and the faults run against it."""
