from console.cli import entry

entry()
