"""Everything that runs on the GPU box. Imports jobspecs only (never provisioning/, tasks/ or flows/)."""
