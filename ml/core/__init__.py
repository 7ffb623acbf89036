"""The core every plane stands on: settings, where stores keep their files, atomic writes, the control
database, tenants, warehouses, and the landing contract. Imports nothing above it."""
