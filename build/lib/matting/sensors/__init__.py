"""Sensors: ``matting.sensors.new_files`` (new settled images in a folder, S3 prefix or SFTP dir)."""
