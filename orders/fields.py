from django.db import models


class ExactCharField(models.CharField):
    """A CharField compared byte for byte.

    MariaDB's default collations are case- and accent-insensitive, which would make "ab-1" and
    "AB-1" one key in the unique constraint and answer a new order as a "duplicate". On MariaDB the
    column is created with utf8mb4_bin; SQLite compares exactly already.
    """

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "mysql":
            params["collation"] = "utf8mb4_bin"
        return params
