"""User media: uploads (`POST /v1/media`) that productions reference by id.

``formats`` sniffs what the bytes are, ``inspect`` decodes them once under
limits, ``receive`` streams a multipart upload to a scratch file, ``service``
keeps the rows and the stored objects, ``fetch`` brings a job's media into its
scratch folder for the engine, ``endpoints`` is the HTTP face.
"""
