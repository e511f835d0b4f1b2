# nooelint: oelint.var.suggestedvar.BUGTRACKER
# (line 1 above) BUGTRACKER: the project has no public tracker yet.
SUMMARY = "streamhub media appliance"
DESCRIPTION = "Everything an image needs to run streamhub: the service, and \
               the NFS client for a media root on a NAS. Add it to an image \
               with IMAGE_INSTALL:append = ' packagegroup-streamhub'."
SECTION = "multimedia"

inherit packagegroup

RDEPENDS:${PN} = "streamhub"
# Only needed for a media root on NFS (docs/YOCTO.md); an image without NFS
# drops it with BAD_RECOMMENDATIONS += "nfs-utils-client".
RRECOMMENDS:${PN} = "nfs-utils-client"
