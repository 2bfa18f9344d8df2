#!/bin/sh
# As in the official nginx image: render /etc/nginx/templates/**/*.template into
# /etc/nginx/conf.d/ with envsubst, substituting only variables that are set (filtered by
# NGINX_ENVSUBST_FILTER). Nothing happens when the template directory does not exist.
set -e

template_dir=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
output_dir=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
filter=${NGINX_ENVSUBST_FILTER:-}

[ -d "$template_dir" ] || exit 0
if [ ! -w "$output_dir" ]; then
	echo "$0: ERROR: $template_dir exists, but $output_dir is not writable"
	exit 0
fi
# A literal '${NAME} ' list of set variables for envsubst; names never contain spaces.
# shellcheck disable=SC2016,SC2046
defined_envs=$(printf '${%s} ' $(awk "END { for (name in ENVIRON) { print ( name ~ /${filter}/ ) ? name : \"\" } }" </dev/null))
find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
	relative_path=${template#"$template_dir/"}
	output_path="$output_dir/${relative_path%"$suffix"}"
	mkdir -p "$(dirname "$output_path")"
	echo "$0: Running envsubst on $template to $output_path"
	envsubst "$defined_envs" <"$template" >"$output_path"
done
