# nooelint: oelint.var.bbclassextend,oelint.var.suggestedvar.BUGTRACKER
# (line 1 above) BBCLASSEXTEND: a target-only system service, no native or
# nativesdk use. BUGTRACKER: the project has no public tracker yet.
SUMMARY = "Media streaming service for small Linux boxes"
DESCRIPTION = "streamhub serves a media folder over HTTP and HTTPS with full \
               range support, so browsers, VLC, mpv and ffmpeg seek instantly. \
               It runs as a hardened systemd service on a NAS, a mini-PC or an \
               edge device."
# The homepage is a placeholder like STREAMHUB_GIT_URI below; the lint's
# reachability ping needs a network and a real host, neither of which exists here.
# nooelint: oelint.vars.homepageping
HOMEPAGE = "https://example.invalid/streamhub"
SECTION = "multimedia"
CVE_PRODUCT = "streamhub"

# The repository has no LICENSE files yet: the checksum covers the
# `license = "MIT OR Apache-2.0"` line of Cargo.toml, and
# scripts/check-packaging.sh fails when that line moves or changes.
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=6;endline=6;md5=86b31c7756a1a7962f28b62856ed4f05"

PV = "0.1.0+git"

# Where to fetch streamhub from: set both in local.conf or a bbappend
# (docs/YOCTO.md), e.g.
#   STREAMHUB_GIT_URI:pn-streamhub = "git://git.mycompany.example/streamhub.git"
#   SRCREV:pn-streamhub = "<40-hex commit on main>"
STREAMHUB_GIT_URI ?= "git://example.invalid/streamhub.git"
SRC_URI = "${STREAMHUB_GIT_URI};branch=main;protocol=https"
# Placeholder: the fetch fails until a real commit is set.
SRCREV ?= "0000000000000000000000000000000000000000"

# scarthgap unpacks into WORKDIR and may lack UNPACKDIR; styhead and later use it.
UNPACKDIR ??= "${WORKDIR}"
S = "${UNPACKDIR}/git"

inherit cargo cargo-update-recipe-crates features_check systemd useradd

# Generated from Cargo.lock by scripts/gen-yocto-crates.py.
require streamhub-crates.inc

REQUIRED_DISTRO_FEATURES = "systemd"

# SQLite features streamhub never uses, left out of the bundled build to keep the binary
# within its budget; the same value as the repository's .cargo/config.toml, which a build
# from another directory does not read.
export LIBSQLITE3_FLAGS = "-USQLITE_ENABLE_RTREE -USQLITE_ENABLE_FTS3 -USQLITE_ENABLE_FTS3_PARENTHESIS -USQLITE_ENABLE_DBSTAT_VTAB -USQLITE_ENABLE_STAT4 -USQLITE_SOUNDEX -USQLITE_ENABLE_COLUMN_METADATA -USQLITE_ENABLE_LOAD_EXTENSION -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_OMIT_DECLTYPE -DSQLITE_DEFAULT_MEMSTATUS=0 -DSQLITE_OMIT_DEPRECATED -DSQLITE_OMIT_SHARED_CACHE -DSQLITE_OMIT_PROGRESS_CALLBACK"

# ffmpeg/ffprobe on the target, for media probing. ffmpeg carries
# LICENSE_FLAGS = "commercial" (docs/YOCTO.md).
PACKAGECONFIG ??= ""
PACKAGECONFIG[ffmpeg] = ",,,ffmpeg"

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --user-group --no-create-home \
                       --home-dir ${localstatedir}/lib/streamhub \
                       --shell ${base_sbindir}/nologin \
                       --comment 'streamhub media service' streamhub"

SYSTEMD_SERVICE:${PN} = "streamhub.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    # The same unit, user and tmpfiles snippets as scripts/install.sh installs.
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/streamhub.service ${D}${systemd_system_unitdir}/
    sed -i -e 's,/usr/bin/streamhub,${bindir}/streamhub,g' \
        ${D}${systemd_system_unitdir}/streamhub.service

    install -d ${D}${nonarch_libdir}/sysusers.d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${S}/systemd/sysusers.d/streamhub.conf ${D}${nonarch_libdir}/sysusers.d/
    install -m 0644 ${S}/systemd/tmpfiles.d/streamhub.conf ${D}${nonarch_libdir}/tmpfiles.d/

    install -d ${D}${sysconfdir}/streamhub
    install -m 0644 ${S}/config/streamhub.toml ${D}${sysconfdir}/streamhub/streamhub.toml
    # The real paths in the file (the unit no longer sets them): the CLI reads it too.
    sed -i -e 's,^data_dir = .*,data_dir = "${localstatedir}/lib/streamhub",' \
        -e 's,^media_root = .*,media_root = "${servicedir}/media",' \
        ${D}${sysconfdir}/streamhub/streamhub.toml

    # The media root ships in the image, so a read-only rootfs has it too.
    install -d -m 0755 -o streamhub -g streamhub ${D}${servicedir}/media
}

FILES:${PN} += "${nonarch_libdir}/sysusers.d/streamhub.conf \
                ${nonarch_libdir}/tmpfiles.d/streamhub.conf \
                ${servicedir}/media"

CONFFILES:${PN} = "${sysconfdir}/streamhub/streamhub.toml"
