"""ttsq's service core: configuration, job records, storage and the command line, shared by api/ and worker/."""
