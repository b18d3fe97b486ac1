"""Tools around the services: the CLI, the importer, the simulator, sample data, AsyncAPI."""
