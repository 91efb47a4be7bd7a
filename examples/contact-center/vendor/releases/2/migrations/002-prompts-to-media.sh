# Version 2 keeps all media under media/: move the prompts there.
# STACKVAULT_SOURCE_DATA is the stack's "data" folder on this host.
data="$STACKVAULT_SOURCE_DATA"
mkdir -p "$data/media"
if [ -d "$data/prompts" ]; then
  mv "$data/prompts" "$data/media/prompts"
fi
# The default prompts link follows them.
if [ -L "$data/prompts-default" ]; then
  ln -sfn media/prompts/en "$data/prompts-default"
fi
